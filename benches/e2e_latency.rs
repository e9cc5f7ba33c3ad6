//! End-to-end benchmark of the elements: appsrc (timestamped access units) → punktfunksink →
//! UDP relay with loss → punktfunksrc → appsink, all on 127.0.0.1.
//!
//! Measures the added latency from the sink's `render` (a probe on its sink pad) to the src's
//! push (a probe on its src pad) for every frame, and the share of frames delivered, at 0 %, 5 %
//! and 10 % iid loss, with 1080p60-sized access units at 50 Mbit/s (P-frames ~100 kB, a 300 kB
//! keyframe every second), `fec-percent=20`, `pacing-rate=1000000000`. The "over wire time"
//! columns subtract each frame's own wire time: when the pacer releases its last datagram (all
//! data and parity), computed with the same pacer the sink uses. Latency statistics skip the
//! first second (warm-up: caps, the first Reed-Solomon coder per (k, m), fresh pages); the
//! delivery column counts every frame the sink sent (its `frames-sent`).
//!
//! Run: `cargo bench --bench e2e_latency` (add `-- --frames N` to change the frames per row).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstpunktfunk::protocol::fec::coder::ReedSolomon8;
use gstpunktfunk::protocol::media::packetizer::{Datagrams, FrameParams, Packetizer};
use gstpunktfunk::protocol::time::pacing::{Pacer, PacingConfig};
use gstpunktfunk::protocol::wire::{DEFAULT_MTU, TAG_LEN};
use gstpunktfunk::testkit::impair::{ImpairConfig, LossModel};
use gstpunktfunk::testkit::relay::Relay;
use gstpunktfunk::testkit::rng::Rng;

const FPS: u64 = 60;
const RATE: u64 = 1_000_000_000;

fn frame(i: u32) -> Vec<u8> {
    // No zero bytes, so no Annex-B start codes: the sink finds no parameter sets to cache or
    // prepend, and what arrives must equal what was sent.
    let len = if i.is_multiple_of(FPS as u32) {
        300_000
    } else {
        90_000 + (i as usize * 7919) % 20_000
    };
    let mut rng = Rng::new(u64::from(i) + 1);
    let mut f: Vec<u8> = (0..len).map(|_| (rng.next_u64() % 255) as u8 + 1).collect();
    // The index in base-128 digits with the top bit set: never a zero byte.
    for (k, b) in f.iter_mut().take(4).enumerate() {
        *b = ((i >> (7 * (3 - k))) & 0x7f) as u8 | 0x80;
    }
    f
}

fn index_of(data: &[u8]) -> u32 {
    data[..4]
        .iter()
        .fold(0u32, |acc, b| (acc << 7) | (b & 0x7f) as u32)
}

/// The release time of the frame's last datagram after the first one, with the sink's pacer.
fn wire_time(len: usize, fec_percent: u8) -> Duration {
    let mut p = Packetizer::new(DEFAULT_MTU, Box::new(ReedSolomon8::new()));
    let mut d = Datagrams::new();
    let params = FrameParams {
        frame_index: 0,
        keyframe: false,
        fec_percent,
        session_id: 1,
        first_packet_number: 0,
        sealed: true,
        tag_len: TAG_LEN,
        timing: Default::default(),
    };
    let _ = p.packetize(&vec![1u8; len], &params, &mut d);
    let now = Instant::now();
    let mut pacer = Pacer::new(PacingConfig {
        rate_bps: RATE,
        ..PacingConfig::default()
    });
    let s = pacer.schedule(d.wire_bytes(), d.len(), now);
    s.release_of(d.len().saturating_sub(1)) - now
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

struct Row {
    loss: f64,
    fec_mode: &'static str,
    sent: u32,
    delivered: usize,
    p50: f64,
    p99: f64,
    p50_over: f64,
    p99_over: f64,
    max_over: f64,
}

fn run(loss: f64, frames: u32, fec_mode: &str) -> Row {
    let host = gst::parse::launch(&format!(
        "appsrc name=in is-live=true format=time \
         caps=video/x-h264,stream-format=byte-stream,alignment=au \
         ! punktfunksink name=sink port=0 fec-percent=20 pacing-rate=1000000000 sync=false \
         passphrase=bench fec-mode={fec_mode}",
    ))
    .expect("host pipeline")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let appsrc = host
        .by_name("in")
        .expect("appsrc")
        .downcast::<gst_app::AppSrc>()
        .expect("appsrc");
    let sink = host.by_name("sink").expect("sink");
    host.set_state(gst::State::Playing).expect("host plays");
    let port: u32 = sink.property("bound-port");
    let relay = Relay::start(
        "127.0.0.1:0".parse().expect("literal"),
        format!("127.0.0.1:{port}").parse().expect("addr"),
        ImpairConfig {
            seed: 99,
            loss: if loss > 0.0 {
                LossModel::Iid(loss)
            } else {
                LossModel::None
            },
            ..ImpairConfig::default()
        },
        ImpairConfig::default(),
    )
    .expect("relay");
    let client = gst::parse::launch(&format!(
        "punktfunksrc name=src port={} passphrase=bench wait-for-keyframe=false ! appsink name=out sync=false",
        relay.addr().port()
    ))
    .expect("client pipeline")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let src = client.by_name("src").expect("src");

    let rendered: Arc<Mutex<HashMap<u32, Instant>>> = Default::default();
    let pushed: Arc<Mutex<HashMap<u32, Instant>>> = Default::default();
    for (pad, map) in [
        (sink.static_pad("sink").expect("pad"), rendered.clone()),
        (src.static_pad("src").expect("pad"), pushed.clone()),
    ] {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let t = Instant::now();
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                && let Ok(m) = b.map_readable()
                && m.len() >= 4
            {
                map.lock().expect("lock").insert(index_of(&m), t);
            }
            gst::PadProbeReturn::Ok
        });
    }
    client.set_state(gst::State::Playing).expect("client plays");
    // Wait until the host has a client.
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let s: gst::Structure = sink.property("stats");
        if s.get::<bool>("connected").unwrap_or(false) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let t0 = Instant::now();
    let mut wire = HashMap::new();
    for i in 0..frames {
        let due = t0 + Duration::from_nanos(i as u64 * 1_000_000_000 / FPS);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let mut f = frame(i);
        let key = i.is_multiple_of(FPS as u32);
        // The sink's current parity share (adaptive mode changes it from loss reports).
        let fec: u32 = sink
            .property::<gst::Structure>("stats")
            .get::<u32>("fec-percent")
            .unwrap_or(20);
        wire.insert(i, wire_time(f.len(), fec.min(100) as u8));
        if key {
            f[4] = 0x65; // cosmetic: looks like an IDR NAL header byte
        }
        let mut buf = gst::Buffer::from_mut_slice(f);
        {
            let b = buf.get_mut().expect("fresh buffer");
            b.set_pts(gst::ClockTime::from_nseconds(
                i as u64 * 1_000_000_000 / FPS,
            ));
            if !key {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        if appsrc.push_buffer(buf).is_err() {
            break;
        }
    }
    // EOS follows the last frame through the sink (which says bye), and the src ends with EOS
    // after the last frame it delivers: wait for that, not for counts (appsrc may still hold
    // the last buffer when the loop above ends).
    let _ = appsrc.end_of_stream();
    let _ = client
        .bus()
        .expect("bus")
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Eos]);
    let hs: gst::Structure = sink.property("stats");
    let sent_by_sink = hs.get::<u64>("frames-sent").unwrap_or(0) as u32;
    if std::env::var_os("E2E_DEBUG").is_some() {
        let cs: gst::Structure = src.property("stats");
        eprintln!(
            "sink frames-sent {:?} (no-peer {:?}), src frames-received {:?}",
            hs.get::<u64>("frames-sent"),
            hs.get::<u64>("frames-dropped-no-peer"),
            cs.get::<u64>("frames-received")
        );
    }
    let _ = client.set_state(gst::State::Null);
    let _ = host.set_state(gst::State::Null);
    drop(relay);

    let rendered = rendered.lock().expect("lock");
    let pushed = pushed.lock().expect("lock");
    let mut lat = Vec::new();
    let mut over = Vec::new();
    for (i, t_push) in pushed.iter() {
        // The first second warms up: caps, the first Reed-Solomon coder for each (k, m) on
        // both ends, page faults of fresh buffers. Delivery counts every frame; latency only
        // the steady state.
        if *i < FPS as u32 {
            continue;
        }
        if let Some(t_render) = rendered.get(i) {
            let l = t_push.saturating_duration_since(*t_render);
            lat.push(l.as_secs_f64() * 1e3);
            let w = wire.get(i).copied().unwrap_or_default();
            over.push(l.saturating_sub(w).as_secs_f64() * 1e3);
        }
    }
    let delivered = pushed.keys().filter(|i| rendered.contains_key(i)).count();
    if std::env::var_os("E2E_DEBUG").is_some() {
        let mut worst: Vec<(f64, u32)> = pushed
            .iter()
            .filter_map(|(i, tp)| {
                rendered.get(i).map(|tr| {
                    let l = tp.saturating_duration_since(*tr);
                    let w = wire.get(i).copied().unwrap_or_default();
                    (l.saturating_sub(w).as_secs_f64() * 1e3, *i)
                })
            })
            .collect();
        worst.sort_by(|a, b| b.0.total_cmp(&a.0));
        eprintln!(
            "worst over-wire (ms, index): {:?}",
            &worst[..worst.len().min(12)]
        );
        let missing: Vec<u32> = (0..frames).filter(|i| !pushed.contains_key(i)).collect();
        eprintln!(
            "missing: {missing:?}, rendered {} of {frames}, last frame rendered: {}",
            rendered.len(),
            rendered.contains_key(&(frames - 1))
        );
    }
    Row {
        loss,
        fec_mode: if fec_mode == "adaptive" {
            "adaptive"
        } else {
            "fixed 20 %"
        },
        sent: sent_by_sink,
        delivered,
        p50: percentile(&mut lat, 0.5),
        p99: percentile(&mut lat, 0.99),
        p50_over: percentile(&mut over, 0.5),
        p99_over: percentile(&mut over, 0.99),
        max_over: percentile(&mut over, 1.0),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let frames = args
        .iter()
        .position(|a| a == "--frames")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(600u32);
    // `cargo test --benches` runs benches with --test: keep that quick.
    let frames = if args.iter().any(|a| a == "--test") {
        30
    } else {
        frames
    };
    gst::init().expect("gst init");
    gstpunktfunk::plugin_register_static().expect("plugin");
    println!(
        "e2e latency, sink render → src push, 1080p60-sized AUs at 50 Mbit/s, fec 20 %, pacing 1 Gbit/s, {frames} frames per row"
    );
    println!(
        "| loss | FEC | frames delivered | latency p50 | latency p99 | over wire time p50 | over wire time p99 | over wire time max |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (loss, mode) in [
        (0.0, "fixed"),
        (0.05, "fixed"),
        (0.10, "fixed"),
        (0.10, "adaptive"),
    ] {
        let r = run(loss, frames, mode);
        println!(
            "| {:.0} % | {} | {}/{} ({:.2} %) | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms |",
            r.loss * 100.0,
            r.fec_mode,
            r.delivered,
            r.sent,
            r.delivered as f64 * 100.0 / r.sent as f64,
            r.p50,
            r.p99,
            r.p50_over,
            r.p99_over,
            r.max_over
        );
    }
}
