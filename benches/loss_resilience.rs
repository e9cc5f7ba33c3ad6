//! Loss resilience: pictures keep flowing under real loss with
//! default properties. Two parts, each row one path through the project's relay, the loss
//! applied to both directions (video and back channel, independently seeded):
//!
//! - **real codec** (the glass-to-glass harness in `benches/g2g/`): `videotestsrc is-live=true
//!   pattern=snow` 1280x720@60 → `x264enc tune=zerolatency speed-preset=ultrafast
//!   key-int-max=120 bitrate=20000 threads=1` → `punktfunksink mode=caller passphrase=…` →
//!   relay → `punktfunksrc mode=listener passphrase=…` → `avdec_h264`, every picture compared by
//!   checksum with a local decode of the same bitstream. Per row: pictures shown (from the first
//!   picture, after 1 s of warm-up), the frame of the first picture, p50/p99 capture → arrival,
//!   the p99's distance from the 0 % row's against one RTT + 2 ms, wire overhead (parity +
//!   repair datagrams / data datagrams, from the sink's `stats`) over the row and from 5 s on
//!   (the "settles ≤ 10 % within 5 s" check), and the source lag (how late the machine pushed
//!   pictures: if it grows, x264 did not keep up). SRT at latency 125 ms on the same path and
//!   loss in the same table.
//! - **synthetic**: `appsrc` 1080p60 at ~50 Mbit/s (a 300 kB keyframe every 120 frames on a
//!   fixed cycle, ~100 kB P-frames; nothing answers keyframe requests) → `punktfunksink
//!   mode=caller` → relay → `punktfunksrc mode=listener` → `appsink`: frames delivered
//!   byte-exact (of all frames pushed once connected) and p50/p99 sink → src latency (pad probe
//!   on the sink's input to pad probe on the src's output).
//!
//! Rows: `0` (none), `10` (10 % iid), `ge` (Gilbert-Elliott: enter 1 %, leave 30 %, ≈ 3.2 %
//! loss in bursts of 3.3 on average), `20` (20 % iid).
//!
//! ```text
//! cargo bench --features testing --bench loss_resilience -- [--frames N] [--rows 0,10,ge,20]
//!     [--parts real,synthetic] [--transports punktfunk,srt125] [--out docs/loss_resilience.md]
//!     [--csv FILE]
//! ```
//!
//! With `--bench` (as `cargo bench` passes it): 3,000 measured frames a row, all rows, the
//! table into `docs/loss_resilience.md` (~12 minutes). Without (`cargo test --benches`): a
//! smoke run of 120 frames, rows 0 and 10, into the temporary directory.

#[allow(dead_code)] // the harness's plot writer serves glass_to_glass.rs
#[path = "g2g/mod.rs"]
mod g2g;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use g2g::annexb::{HASH_SEED, hash64};
use g2g::report::{self, Percentiles};
use g2g::synthetic;
use g2g::{Codec, PASSPHRASE, PathSpec, RowResult, RowSpec, Sample, Transport};
use gst::prelude::*;

const FPS: u32 = 60;
/// Frames of warm-up before the measurement (1 s: caps, the first coders, the handshake).
const WARMUP: u32 = FPS;
/// From when the overhead counts as settled.
const SETTLED_AFTER_S: f64 = 5.0;
/// The allowance over the 0 % row's p99: one RTT plus this.
const P99_SLACK_MS: f64 = 2.0;
/// Synthetic path: a keyframe every this many frames, whatever the receiver asks.
const KEY_INTERVAL: u32 = 120;

#[derive(Clone, Copy, PartialEq)]
enum Part {
    Real,
    Synthetic,
}

struct Options {
    frames: u32,
    rows: Vec<(String, PathSpec)>,
    parts: Vec<Part>,
    transports: Vec<Transport>,
    out: PathBuf,
    csv: Option<PathBuf>,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "loss_resilience: {msg}\nusage: cargo bench --features testing --bench loss_resilience -- \
         [--frames N] [--rows 0,10,ge,20] [--parts real,synthetic] \
         [--transports punktfunk,srt125] [--out FILE.md] [--csv FILE.csv]"
    );
    std::process::exit(2)
}

fn path_of(name: &str) -> Option<PathSpec> {
    match name {
        "ge" => Some(PathSpec::gilbert(0.01, 0.30)),
        _ => name
            .trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..100.0).contains(p))
            .map(PathSpec::iid),
    }
}

fn rows_of(list: &str) -> Vec<(String, PathSpec)> {
    list.split(',')
        .map(|s| {
            let s = s.trim();
            let p = path_of(s).unwrap_or_else(|| usage(&format!("unknown row {s:?}")));
            (s.to_string(), p)
        })
        .collect()
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = g2g::args::full(&args);
    let mut o = Options {
        frames: if full { 3000 } else { 120 },
        rows: rows_of(if full { "0,10,ge,20" } else { "0,10" }),
        parts: vec![Part::Real, Part::Synthetic],
        // "punktfunk" here is the issue's set-up: the sink calls, the src listens.
        transports: vec![Transport::PunktfunkCaller, Transport::Srt(125)],
        out: if full {
            "docs/loss_resilience.md".into()
        } else {
            std::env::temp_dir().join("loss_resilience.md")
        },
        csv: None,
    };
    g2g::args::for_each_flag(args, usage, |a, value| match a {
        "--frames" => o.frames = value().parse().unwrap_or_else(|_| usage("bad --frames")),
        "--rows" => o.rows = rows_of(&value()),
        "--parts" => {
            let part = |p: &str| match p {
                "real" => Some(Part::Real),
                "synthetic" => Some(Part::Synthetic),
                _ => None,
            };
            o.parts = g2g::args::list(&value(), part, "part", usage)
        }
        "--transports" => {
            let transport = |t: &str| match t {
                "punktfunk" | "punktfunk-caller" => Some(Transport::PunktfunkCaller),
                t => Transport::parse(t),
            };
            o.transports = g2g::args::list(&value(), transport, "transport", usage)
        }
        "--out" => o.out = value().into(),
        "--csv" => o.csv = Some(value().into()),
        _ => usage(&format!("unknown argument {a:?}")),
    });
    if o.frames == 0 || o.rows.is_empty() {
        usage("--frames and --rows must not be empty");
    }
    o
}

fn seed_of(path: &PathSpec) -> u64 {
    0x6c6f_7373 ^ path.loss_percent.to_bits() ^ u64::from(path.gilbert.is_some())
}

/// Wire overhead from the sink's counters between two samples: (parity + repair) / data.
fn overhead(from: Option<&Sample>, to: &Sample) -> Option<f64> {
    let zero = Sample::default();
    let from = from.unwrap_or(&zero);
    let data = to.data_shards.checked_sub(from.data_shards)?;
    let extra = (to.parity_shards + to.repair_shards)
        .checked_sub(from.parity_shards + from.repair_shards)?;
    (data > 0).then(|| extra as f64 / data as f64)
}

/// The datagram loss a receiver saw, from its counters.
fn seen_loss(received: u64, lost: u64) -> Option<f64> {
    let all = received + lost;
    (all > 0).then(|| lost as f64 / all as f64)
}

/// A frame interval: a source lag above it means the machine fell behind the live source.
const BEHIND_MS: f64 = 1000.0 / FPS as f64;

fn lag_cell(p: Option<Percentiles>) -> String {
    p.map_or("–".into(), |p| {
        let behind = if p.p50 > BEHIND_MS { " (behind)" } else { "" };
        format!("{:.1} / {:.1}{behind}", p.p50, p.p99)
    })
}

fn pct_cell(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1} %", v * 100.0))
}

fn share_cell(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "–".into();
    }
    if part == whole {
        return format!("100 % ({part} / {whole})");
    }
    format!(
        "{:.2} % ({part} / {whole})",
        100.0 * part as f64 / whole as f64
    )
}

/// `+x.x ms (allowance y.y: ok | over)` against the 0 % row's p99.
fn p99_cell(p99: Option<f64>, base: Option<f64>, rtt_ms: Option<f64>) -> String {
    match (p99, base) {
        (Some(p), Some(b)) => {
            let allowance = rtt_ms.unwrap_or(0.0) + P99_SLACK_MS;
            let d = p - b;
            let verdict = if d <= allowance { "ok" } else { "over" };
            format!("{d:+.1} ms (RTT + 2 = {allowance:.1}: {verdict})")
        }
        _ => "–".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Real codec path.

/// One real-codec row, summarised.
struct RealRow {
    transport: Transport,
    label: String,
    measured: usize,
    shown: usize,
    first_shown: Option<u32>,
    arrival: Option<Percentiles>,
    lag: Option<Percentiles>,
    rtt_ms: Option<f64>,
    overhead_row: Option<f64>,
    overhead_settled: Option<f64>,
    repair: Option<(u64, u64, u64)>,
    /// Datagram loss the src saw over the row.
    seen_loss: Option<f64>,
    error: Option<String>,
    seconds: f64,
}

fn real_row(
    transport: Transport,
    label: &str,
    path: PathSpec,
    frames: u32,
) -> (RealRow, RowResult) {
    let spec = RowSpec {
        transport,
        codec: Codec::X264,
        path,
        frames,
        warmup: WARMUP,
        width: 1280,
        height: 720,
        fps: FPS,
        bitrate_kbps: 20_000,
        key_int: 120,
        seed: seed_of(&path),
        // Diagnostics only: the documented rows run with default properties.
        sink_props: std::env::var("LOSS_SINK_PROPS").unwrap_or_default(),
        bottleneck: None,
    };
    let t = Instant::now();
    let row = g2g::run_row(&spec);
    let first = row.first_shown();
    // Counted from the first picture shown (as the issue counts), never before the warm-up.
    let from = first.map_or(WARMUP, |f| f.max(WARMUP)) as usize;
    let counted: Vec<_> = row
        .measured()
        .iter()
        .filter(|f| f.index as usize >= from)
        .collect();
    let last = row.samples.last();
    let settled_from = row.samples.iter().find(|s| s.t_s >= SETTLED_AFTER_S);
    let rtt = row
        .samples
        .iter()
        .rev()
        .find(|s| s.rtt_us > 0)
        .map(|s| s.rtt_us as f64 / 1e3);
    let summary = RealRow {
        transport,
        label: label.to_string(),
        measured: counted.len(),
        shown: counted.iter().filter(|f| f.shown).count(),
        first_shown: first,
        arrival: Percentiles::of(
            row.measured()
                .iter()
                .filter_map(|f| f.arrival_ms())
                .collect(),
        ),
        lag: Percentiles::of(row.measured().iter().map(|f| f.source_lag_ms()).collect()),
        rtt_ms: rtt,
        overhead_row: last.and_then(|l| overhead(None, l)),
        overhead_settled: last.and_then(|l| settled_from.and_then(|s| overhead(Some(s), l))),
        repair: last.map(|l| (l.frames_repaired, l.repair_requests, l.keyframe_requests)),
        seen_loss: last.and_then(|l| seen_loss(l.packets_received, l.packets_lost)),
        error: row.error.clone(),
        seconds: t.elapsed().as_secs_f64(),
    };
    (summary, row)
}

fn real_table(rows: &[RealRow]) -> String {
    let mut s = String::from(
        "| transport | loss (seen by the src) | pictures shown (from the first) | first picture | capture → arrival p50 / p99, ms \
         | p99 vs the 0 % row | overhead: row / from 5 s | repaired / repair requests / keyframe requests \
         | source lag p50 / p99, ms |\n|---|---|---:|---:|---:|---|---:|---:|---:|\n",
    );
    for r in rows {
        let base = rows
            .iter()
            .find(|b| b.transport == r.transport && b.label == "0")
            .and_then(|b| b.arrival.map(|p| p.p99));
        let mut shown = share_cell(r.shown, r.measured);
        if let Some(e) = &r.error {
            shown = format!("{shown} (error: {})", e.replace('|', "/"));
        }
        let transport = match r.transport {
            Transport::PunktfunkCaller => "punktfunk".to_string(),
            t => t.label(),
        };
        let _ = writeln!(
            s,
            "| {transport} | {}{} | {shown} | {} | {} | {} | {} | {} | {} |",
            row_label(&r.label),
            match r.seen_loss {
                Some(l) if r.transport.is_punktfunk() => format!(" ({:.2} %)", l * 100.0),
                _ => String::new(),
            },
            r.first_shown
                .map_or("never".into(), |i| format!("frame {i}")),
            r.arrival
                .map_or("–".into(), |p| format!("{:.1} / {:.1}", p.p50, p.p99)),
            if r.label == "0" {
                r.rtt_ms
                    .map_or("–".into(), |rtt| format!("(RTT {rtt:.2} ms)"))
            } else {
                p99_cell(r.arrival.map(|p| p.p99), base, r.rtt_ms)
            },
            if r.transport.is_punktfunk() {
                format!(
                    "{} / {}",
                    pct_cell(r.overhead_row),
                    pct_cell(r.overhead_settled)
                )
            } else {
                "–".into()
            },
            match r.repair {
                Some((a, b, c)) if r.transport.is_punktfunk() => format!("{a} / {b} / {c}"),
                _ => "–".into(),
            },
            lag_cell(r.lag),
        );
    }
    s
}

fn row_label(name: &str) -> String {
    match name {
        "0" => "none".into(),
        "ge" => "GE enter 1 % / leave 30 % (≈3.2 %, bursts 3.3)".into(),
        n => format!("{n} % iid"),
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic path.

/// Frame `i` of the synthetic stream: no zero byte anywhere (so no Annex-B start code, and the
/// sink has no parameter sets to find), its index in the first five bytes.
fn synthetic_frame(i: u32) -> Vec<u8> {
    let len = if i.is_multiple_of(KEY_INTERVAL) {
        300_000
    } else {
        // 95–105 kB: ~50 Mbit/s at 60 fps with the keyframes.
        synthetic::spread(i, 95_000, 10_000)
    };
    synthetic::frame(i, len)
}

struct SynRow {
    label: String,
    pushed: u32,
    exact: usize,
    corrupt: usize,
    latency: Option<Percentiles>,
    rtt_ms: Option<f64>,
    overhead_row: Option<f64>,
    overhead_settled: Option<f64>,
    repaired: u64,
    keyframe_requests: u64,
    seen_loss: Option<f64>,
    /// How late the pushes were against the 60 fps schedule (a busy machine).
    lag: Option<Percentiles>,
    error: Option<String>,
    seconds: f64,
}

fn stat(e: &gst::Element, f: &str) -> u64 {
    e.property::<gst::Structure>("stats")
        .get::<u64>(f)
        .unwrap_or(0)
}

fn shard_sample(sink: &gst::Element) -> Sample {
    Sample {
        data_shards: stat(sink, "data-shards-sent"),
        parity_shards: stat(sink, "parity-shards-sent"),
        repair_shards: stat(sink, "repair-shards"),
        ..Sample::default()
    }
}

fn launch(d: &str) -> Result<gst::Pipeline, String> {
    gst::parse::launch(d)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())
}

fn synthetic_row(label: &str, path: PathSpec, frames: u32) -> SynRow {
    let t = Instant::now();
    let mut row = SynRow {
        label: label.to_string(),
        pushed: 0,
        exact: 0,
        corrupt: 0,
        latency: None,
        rtt_ms: None,
        overhead_row: None,
        overhead_settled: None,
        repaired: 0,
        keyframe_requests: 0,
        seen_loss: None,
        lag: None,
        error: None,
        seconds: 0.0,
    };
    if let Err(e) = synthetic_run(path, frames, &mut row) {
        row.error = Some(e);
    }
    row.seconds = t.elapsed().as_secs_f64();
    row
}

/// Per frame index: when the sink got it, and what the src pushed (when, a hash, the length).
#[derive(Default)]
struct SynRecord {
    rendered: HashMap<u32, Instant>,
    pushed: HashMap<u32, (Instant, u64, usize)>,
}

fn synthetic_run(path: PathSpec, frames: u32, row: &mut SynRow) -> Result<(), String> {
    let client = launch(&format!(
        "punktfunksrc name=src mode=listener address=127.0.0.1 port=0 passphrase={PASSPHRASE} \
         ! appsink name=out sync=false"
    ))?;
    let src = client.by_name("src").ok_or("no src")?;
    let rec: Arc<Mutex<SynRecord>> = Arc::default();
    let r = rec.clone();
    let pad = src.static_pad("src").ok_or("src has no src pad")?;
    synthetic::probe(&pad, move |i, at, m| {
        let h = hash64(m, HASH_SEED);
        let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
        r.pushed.entry(i).or_insert((at, h, m.len()));
    });
    let outcome = (|| -> Result<(), String> {
        client
            .set_state(gst::State::Playing)
            .map_err(|e| format!("client: {e}"))?;
        let port = src.property::<u32>("port");
        let port = u16::try_from(port)
            .ok()
            .filter(|&p| p != 0)
            .ok_or("the src reported no bound port")?;
        let relay = g2g::start_relay(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            &path,
            seed_of(&path),
            None,
        )
        .map_err(|e| format!("relay: {e}"))?;
        let host = launch(&format!(
            "appsrc name=in is-live=true format=time \
             caps=video/x-h264,stream-format=byte-stream,alignment=au \
             ! punktfunksink name=sink mode=caller address=127.0.0.1 port={} \
             passphrase={PASSPHRASE}",
            relay.addr().port()
        ))?;
        let result = synthetic_drive(&host, &client, &rec, frames, row);
        let _ = host.set_state(gst::State::Null);
        result
    })();
    let _ = client.set_state(gst::State::Null);
    outcome?;

    let rec = rec.lock().unwrap_or_else(|e| e.into_inner());
    let mut latency = Vec::new();
    for i in 0..row.pushed {
        let Some(&(at, h, len)) = rec.pushed.get(&i) else {
            continue;
        };
        let f = synthetic_frame(i);
        if len != f.len() || h != hash64(&f, HASH_SEED) {
            row.corrupt += 1;
            continue;
        }
        row.exact += 1;
        if i >= WARMUP
            && let Some(r) = rec.rendered.get(&i)
        {
            latency.push(at.saturating_duration_since(*r).as_secs_f64() * 1e3);
        }
    }
    row.latency = Percentiles::of(latency);
    Ok(())
}

fn synthetic_drive(
    host: &gst::Pipeline,
    client: &gst::Pipeline,
    rec: &Arc<Mutex<SynRecord>>,
    frames: u32,
    row: &mut SynRow,
) -> Result<(), String> {
    let sink = host.by_name("sink").ok_or("no sink")?;
    let appsrc = host
        .by_name("in")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or("no appsrc")?;
    let r = rec.clone();
    let pad = sink.static_pad("sink").ok_or("sink has no sink pad")?;
    synthetic::probe(&pad, move |i, at, _| {
        let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
        r.rendered.entry(i).or_insert(at);
    });
    host.set_state(gst::State::Playing)
        .map_err(|e| format!("host: {e}"))?;
    // The stream starts once the handshake is done (frames before it would be dropped as
    // "no peer"; the connect time is the real path's "first picture" column). Polled: the
    // elements post no message for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sink
        .property::<gst::Structure>("stats")
        .get::<bool>("connected")
        .unwrap_or(false)
    {
        if Instant::now() >= deadline {
            return Err("the sink did not connect within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let total = WARMUP + frames;
    let t0 = Instant::now();
    // LOSSBENCH_DEBUG=1: the sink's stats once a second.
    let debug = std::env::var_os("LOSSBENCH_DEBUG").is_some();
    let mut settled_from = None;
    let mut lag = Vec::with_capacity(total as usize);
    // Frames are made one ahead, so making them does not delay the push.
    let mut next = synthetic_frame(0);
    for i in 0..total {
        let due = t0 + Duration::from_nanos(u64::from(i) * 1_000_000_000 / u64::from(FPS));
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w); // the source's frame clock, not synchronisation
        }
        lag.push(Instant::now().saturating_duration_since(due).as_secs_f64() * 1e3);
        if debug && i.is_multiple_of(FPS) {
            let st = sink.property::<gst::Structure>("stats");
            eprintln!("t {:.1} s sink stats: {st}", t0.elapsed().as_secs_f64());
        }
        if settled_from.is_none() && t0.elapsed().as_secs_f64() >= SETTLED_AFTER_S {
            settled_from = Some(shard_sample(&sink));
        }
        let mut buf = gst::Buffer::from_mut_slice(std::mem::take(&mut next));
        {
            let b = buf.get_mut().ok_or("fresh buffer not writable")?;
            b.set_pts(gst::ClockTime::from_nseconds(
                u64::from(i) * 1_000_000_000 / u64::from(FPS),
            ));
            if !i.is_multiple_of(KEY_INTERVAL) {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        appsrc
            .push_buffer(buf)
            .map_err(|e| format!("push {i}: {e:?}"))?;
        row.pushed = i + 1;
        if i + 1 < total {
            next = synthetic_frame(i + 1);
        }
    }
    // The counters before the end: after the sink's bye the src's session (and its stats)
    // is gone. The last frame's datagrams may still be on their way (a frame in 3,000).
    let last = shard_sample(&sink);
    let rtt = stat(&sink, "rtt-us");
    if let Some(src) = client.by_name("src") {
        row.repaired = stat(&src, "frames-repaired");
        row.keyframe_requests = stat(&src, "keyframe-requests");
        row.seen_loss = seen_loss(stat(&src, "packets-received"), stat(&src, "packets-lost"));
    }
    // The sink says bye after the last frame; the src ends with EOS after what it delivers.
    let _ = appsrc.end_of_stream();
    let bus = client.bus().ok_or("no bus")?;
    let _ = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(5),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    row.overhead_row = overhead(None, &last);
    row.overhead_settled = settled_from.and_then(|s| overhead(Some(&s), &last));
    row.rtt_ms = (rtt > 0).then(|| rtt as f64 / 1e3);
    row.lag = Percentiles::of(lag);
    Ok(())
}

fn synthetic_table(rows: &[SynRow]) -> String {
    let mut s = String::from(
        "| loss (seen by the src) | frames delivered byte-exact | sink → src p50 / p99, ms | p99 vs the 0 % row \
         | overhead: row / from 5 s | repaired / keyframe requests | push lag p50 / p99, ms |\n\
         |---|---:|---:|---|---:|---:|---:|\n",
    );
    let base = rows
        .iter()
        .find(|r| r.label == "0")
        .and_then(|r| r.latency.map(|p| p.p99));
    for r in rows {
        let mut delivered = share_cell(r.exact, r.pushed as usize);
        if r.corrupt > 0 {
            delivered = format!("{delivered}, {} corrupt", r.corrupt);
        }
        if let Some(e) = &r.error {
            delivered = format!("{delivered} (error: {})", e.replace('|', "/"));
        }
        let _ = writeln!(
            s,
            "| {}{} | {delivered} | {} | {} | {} / {} | {} / {} | {} |",
            row_label(&r.label),
            r.seen_loss
                .map_or(String::new(), |l| format!(" ({:.2} %)", l * 100.0)),
            r.latency
                .map_or("–".into(), |p| format!("{:.2} / {:.2}", p.p50, p.p99)),
            if r.label == "0" {
                r.rtt_ms
                    .map_or("–".into(), |rtt| format!("(RTT {rtt:.2} ms)"))
            } else {
                p99_cell(r.latency.map(|p| p.p99), base, r.rtt_ms)
            },
            pct_cell(r.overhead_row),
            pct_cell(r.overhead_settled),
            r.repaired,
            r.keyframe_requests,
            lag_cell(r.lag),
        );
    }
    s
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let o = options();
    gst::init().expect("GStreamer initialises");
    gstpunktfunk::plugin_register_static().expect("the plugin registers");
    let started = Instant::now();
    let mut failed = false;
    let mut doc = String::from(
        "<!-- written by `cargo bench --features testing --bench loss_resilience`; see docs/BENCHMARKS.md -->\n\n",
    );

    if o.parts.contains(&Part::Real) {
        let mut rows = Vec::new();
        let mut results = Vec::new();
        for (label, path) in &o.rows {
            for &transport in &o.transports {
                let probe = RowSpec {
                    transport,
                    codec: Codec::X264,
                    path: *path,
                    frames: 1,
                    warmup: 0,
                    width: 0,
                    height: 0,
                    fps: FPS,
                    bitrate_kbps: 0,
                    key_int: 0,
                    seed: 0,
                    sink_props: String::new(),
                    bottleneck: None,
                };
                let missing = probe.missing_elements();
                if !missing.is_empty() {
                    eprintln!(
                        "skipping {} {label}: missing elements {}",
                        transport.label(),
                        missing.join(", ")
                    );
                    continue;
                }
                let (r, full) = real_row(transport, label, *path, o.frames);
                eprintln!(
                    "real {} {}: shown {}/{}, first picture {:?}, arrival p99 {:?} ms, overhead {} / {}, \
                     relay dropped {}/{} video, {}/{} back{} ({:.1} s)",
                    transport.label(),
                    row_label(label),
                    r.shown,
                    r.measured,
                    r.first_shown,
                    r.arrival.map(|p| p.p99),
                    pct_cell(r.overhead_row),
                    pct_cell(r.overhead_settled),
                    full.relay.0.dropped,
                    full.relay.0.sent,
                    full.relay.1.dropped,
                    full.relay.1.sent,
                    r.error
                        .as_ref()
                        .map_or(String::new(), |e| format!(", error: {e}")),
                    r.seconds
                );
                failed |= r.error.is_some() || r.shown == 0;
                rows.push(r);
                results.push(full);
            }
        }
        let _ = write!(
            doc,
            "## Real codec: x264 720p60 20 Mbit/s `pattern=snow`, {} measured frames a row\n\n{}\n",
            o.frames,
            real_table(&rows)
        );
        if let Some(csv) = &o.csv
            && let Err(e) = std::fs::write(csv, report::csv(&results))
        {
            eprintln!("loss_resilience: cannot write {}: {e}", csv.display());
        }
    }

    if o.parts.contains(&Part::Synthetic) {
        let mut rows = Vec::new();
        for (label, path) in &o.rows {
            let r = synthetic_row(label, *path, o.frames);
            eprintln!(
                "synthetic {}: {}/{} byte-exact, {} corrupt, p99 {:?} ms, overhead {} / {}{} ({:.1} s)",
                row_label(label),
                r.exact,
                r.pushed,
                r.corrupt,
                r.latency.map(|p| p.p99),
                pct_cell(r.overhead_row),
                pct_cell(r.overhead_settled),
                r.error
                    .as_ref()
                    .map_or(String::new(), |e| format!(", error: {e}")),
                r.seconds
            );
            failed |= r.error.is_some() || r.exact == 0;
            rows.push(r);
        }
        let _ = write!(
            doc,
            "## Synthetic: appsrc 1080p60 ~50 Mbit/s, keyframe every {KEY_INTERVAL} frames, {} frames a row \
             (delivery over all of them, latency after the first {WARMUP})\n\n{}\n",
            o.frames + WARMUP,
            synthetic_table(&rows)
        );
    }

    let _ = writeln!(
        doc,
        "Loss on both directions of the relay (independently seeded). Run in {:.0} s; load \
         average at the end: {}.",
        started.elapsed().as_secs_f64(),
        g2g::report::load_average()
    );
    println!("\n{doc}");
    if let Some(dir) = o.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&o.out, &doc) {
        eprintln!("loss_resilience: cannot write {}: {e}", o.out.display());
    }
    eprintln!("wrote {}", o.out.display());
    if failed {
        eprintln!("loss_resilience: some rows failed or delivered nothing");
        std::process::exit(1);
    }
}
