//! Congestion control with a real encoder: x264 at 20 Mbit/s on a high-entropy
//! 720p60 picture (`pattern=snow`, `tune=zerolatency speed-preset=ultrafast threads=1`) →
//! `punktfunksink` → the project's relay with a bottleneck on the video direction →
//! `punktfunksrc` → `avdec_h264`, pictures counted as shown by checksum (the glass-to-glass
//! harness in `benches/g2g/`). Each scenario runs with `congestion-control=encoder` (the
//! default) and `none` (the old behaviour) in the same table:
//!
//! - **bottleneck**: 12 Mbit/s, 50 ms drop-tail queue: share of pictures shown from 2 s after
//!   the start, p99 capture → arrival, against the same stream on an open path;
//! - **steps**: capacity 12 → 30 → 8 → 30 Mbit/s (`--step-s` each): how long after each rise
//!   the encoder is back at 20 Mbit/s, how long after the fall until pictures flow again (10 in
//!   a row shown) and how many were lost in between; the time series (encoder bitrate,
//!   estimate, capacity) as CSV and SVG;
//! - **fairness**: two streams (two pipelines, 10 Mbit/s each configured at 20) through one
//!   20 Mbit/s bottleneck: each stream's received rate over the second half.
//!
//! ```text
//! cargo bench --bench congestion --features testing -- [--step-s S] [--out docs/congestion.md]
//!     [--csv docs/congestion_steps.csv] [--svg docs/img/congestion_steps.svg]
//!     [--only bottleneck,steps,fairness] [--modes encoder,none]
//! ```
//!
//! Each mode is the `congestion-control` value, optionally followed by further sink properties
//! (the default list adds `encoder link-share=60`: the stream kept to 60 % of the measured link
//! rate, so each frame crosses in well under a frame interval; `encoder encoder-buffer=0` gives
//! the encoder's own rate-control buffer, 600 ms for x264, instead of the sink's default two
//! frames). Diagnostics:
//! `CONGESTION_FRAMES_DIR=dir` writes each bottleneck row's per-frame records as CSV,
//! `CONGESTION_TRACE=1` prints both streams' bandwidth stats every second of the fairness run,
//! `CONGESTION_SINK_PROPS` appends sink properties to every row, `CONGESTION_SIZE=640x360`
//! encodes a smaller picture at the same bitrate (for a machine too slow for 720p60 noise).
//!
//! ```text
//! ```
//!
//! With `--bench` (as `cargo bench` passes it): 10 s steps, results into `docs/`. Without
//! (`cargo test --benches`, or to check it works): 3 s steps into the temporary directory.

#[allow(dead_code)] // the harness's report writers serve glass_to_glass.rs
#[path = "g2g/mod.rs"]
mod g2g;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use g2g::report::Percentiles;
use g2g::{Codec, PathSpec, RowResult, RowSpec, Sample, Transport};
use gst::prelude::*;
use gstpunktfunk::testkit::impair::ImpairConfig;
use gstpunktfunk::testkit::impair::netem::{BottleneckConfig, QueueLimit, RateSchedule};
use gstpunktfunk::testkit::relay::{Relay, RelayConfig, RelayFlow};
use plotters::prelude::*;

const FPS: u32 = 60;
const BITRATE_KBPS: u32 = 20_000;
const QUEUE: Duration = Duration::from_millis(50);
/// Pictures shown in a row after a fall that count as "flowing again".
const FLOWING_RUN: usize = 10;

struct Options {
    step_s: u32,
    out: PathBuf,
    csv: PathBuf,
    svg: PathBuf,
    /// Scenarios to run (`bottleneck`, `steps`, `fairness`); all when empty.
    only: Vec<String>,
    /// `congestion-control` modes to run (`encoder`, `none`).
    modes: Vec<String>,
}

impl Options {
    fn runs(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let (dir, img) = if full {
        (PathBuf::from("docs"), PathBuf::from("docs/img"))
    } else {
        (std::env::temp_dir(), std::env::temp_dir())
    };
    let mut o = Options {
        step_s: if full { 10 } else { 3 },
        out: dir.join("congestion.md"),
        csv: dir.join("congestion_steps.csv"),
        svg: img.join("congestion_steps.svg"),
        only: Vec::new(),
        modes: vec![
            "encoder".into(),
            "encoder link-share=60".into(),
            "none".into(),
        ],
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--step-s" => o.step_s = val().parse().unwrap_or(o.step_s),
            "--out" => o.out = val().into(),
            "--csv" => o.csv = val().into(),
            "--svg" => o.svg = val().into(),
            "--only" => o.only = val().split(',').map(str::to_owned).collect(),
            "--modes" => o.modes = val().split(',').map(str::to_owned).collect(),
            _ => {}
        }
    }
    o
}

fn bottleneck(schedule: RateSchedule) -> BottleneckConfig {
    BottleneckConfig::new(0)
        .with_schedule(schedule)
        .with_queue(QueueLimit::Time(QUEUE))
}

/// The picture size: 1280×720, or `CONGESTION_SIZE=WxH` for a machine that cannot encode
/// 720p60 noise in real time (the frames' bytes stay those of the bitrate, so the path sees
/// the same stream).
fn size() -> (u32, u32) {
    std::env::var("CONGESTION_SIZE")
        .ok()
        .and_then(|v| {
            let (w, h) = v.split_once('x')?;
            Some((w.parse().ok()?, h.parse().ok()?))
        })
        .unwrap_or((1280, 720))
}

fn row(cc: &str, seconds: u32, warmup_s: u32, b: Option<BottleneckConfig>) -> RowSpec {
    let (width, height) = size();
    RowSpec {
        transport: Transport::Punktfunk,
        codec: Codec::X264,
        path: PathSpec::iid(0.0),
        frames: (seconds - warmup_s) * FPS,
        warmup: warmup_s * FPS,
        width,
        height,
        fps: FPS,
        bitrate_kbps: BITRATE_KBPS,
        key_int: 120,
        seed: 0xcc,
        sink_props: format!(
            "congestion-control={cc} {}",
            std::env::var("CONGESTION_SINK_PROPS").unwrap_or_default()
        ),
        bottleneck: b,
    }
}

fn shown_share(r: &RowResult) -> f64 {
    let m = r.measured();
    m.iter().filter(|f| f.shown).count() as f64 / m.len().max(1) as f64
}

fn p99_arrival(r: &RowResult) -> Option<f64> {
    Percentiles::of(r.measured().iter().filter_map(|f| f.arrival_ms()).collect()).map(|p| p.p99)
}

/// Seconds (capture running time ≈ time since the relay started) of frame `f`.
fn t_of(f: &g2g::FrameRecord) -> f64 {
    f.capture_ns as f64 / 1e9
}

/// After a fall at `at` s: seconds until `FLOWING_RUN` pictures in a row were shown, and the
/// pictures captured in between that were not shown.
fn recovery(r: &RowResult, at: f64, until: f64) -> (Option<f64>, usize) {
    let frames: Vec<_> = r
        .frames
        .iter()
        .filter(|f| t_of(f) >= at && t_of(f) < until)
        .collect();
    let mut run = 0;
    for (i, f) in frames.iter().enumerate() {
        run = if f.shown { run + 1 } else { 0 };
        if run == FLOWING_RUN {
            let start = &frames[i + 1 - FLOWING_RUN];
            let lost = frames[..i + 1 - FLOWING_RUN]
                .iter()
                .filter(|f| !f.shown)
                .count();
            return (Some(t_of(start) - at), lost);
        }
    }
    (None, frames.iter().filter(|f| !f.shown).count())
}

/// Seconds after `at` until the encoder is back at the configured bitrate.
fn back_at_max(samples: &[Sample], at: f64, until: f64) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.t_s >= at && s.t_s < until && s.encoder_kbps >= BITRATE_KBPS)
        .map(|s| s.t_s - at)
}

/// The encoder's bitrate (kbit/s) at the last sample before `until` (the end of a step).
fn encoder_before(samples: &[Sample], until: f64) -> Option<u32> {
    samples
        .iter()
        .rev()
        .find(|s| s.t_s < until)
        .map(|s| s.encoder_kbps)
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}{unit}"))
}

fn write_steps(samples: &[Sample], steps: &[(f64, u64)], csv: &Path, svg: &Path) {
    let capacity = |t: f64| {
        steps
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map_or(0, |s| s.1)
    };
    let mut out = String::from(
        "t_s,capacity_bps,encoder_bps,estimate_bps,target_bps,frames_received,frames_lost,\
         data_shards,parity_shards,repair_shards,link_rate_bps,state\n",
    );
    for s in samples {
        let _ = writeln!(
            out,
            "{:.2},{},{},{},{},{},{},{},{},{},{},{}",
            s.t_s,
            capacity(s.t_s),
            u64::from(s.encoder_kbps) * 1000,
            s.estimate_bps,
            s.target_bps,
            s.frames_received,
            s.frames_lost,
            s.data_shards,
            s.parity_shards,
            s.repair_shards,
            s.link_rate_bps,
            s.state
        );
    }
    if let Err(e) = std::fs::write(csv, out) {
        eprintln!("congestion: cannot write {}: {e}", csv.display());
    }
    if let Err(e) = plot(samples, &capacity, svg) {
        eprintln!("congestion: cannot write {}: {e}", svg.display());
    }
}

fn plot(
    samples: &[Sample],
    capacity: &dyn Fn(f64) -> u64,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let t_max = samples.last().map_or(1.0, |s| s.t_s);
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Capacity steps 12 → 30 → 8 → 30 Mbit/s, x264 at 20 Mbit/s",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..t_max, 0.0..36.0)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("Mbit/s")
        .draw()?;
    type Series<'a> = (&'a str, RGBColor, Box<dyn Fn(&Sample) -> f64 + 'a>);
    let series: [Series<'_>; 3] = [
        (
            "capacity",
            RGBColor(120, 120, 120),
            Box::new(|s: &Sample| capacity(s.t_s) as f64 / 1e6),
        ),
        (
            "estimate (wire)",
            RGBColor(31, 119, 180),
            Box::new(|s: &Sample| s.estimate_bps as f64 / 1e6),
        ),
        (
            "encoder bitrate",
            RGBColor(214, 39, 40),
            Box::new(|s: &Sample| f64::from(s.encoder_kbps) / 1e3),
        ),
    ];
    for (label, color, f) in series {
        chart
            .draw_series(LineSeries::new(
                samples.iter().map(|s| (s.t_s, f(s))),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Two streams through one bottleneck: returns each client's received rate (bit/s) over the
/// second half of `seconds`.
fn fairness(cc: &str, seconds: u32) -> Result<[f64; 2], String> {
    let (w, h) = size();
    let host = |i: usize| {
        format!(
            "videotestsrc is-live=true pattern=snow ! video/x-raw,format=I420,width={w},height={h},framerate={FPS}/1 \
             ! x264enc name=enc{i} tune=zerolatency speed-preset=ultrafast threads=1 bitrate={BITRATE_KBPS} key-int-max=120 \
             ! video/x-h264,stream-format=byte-stream,alignment=au \
             ! punktfunksink name=tx{i} address=127.0.0.1 port=0 congestion-control={cc} {}",
            std::env::var("CONGESTION_SINK_PROPS").unwrap_or_default(),
        )
    };
    let launch = |d: &str| {
        gst::parse::launch(d)
            .map_err(|e| e.to_string())?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_string())
    };
    let hosts = [launch(&host(0))?, launch(&host(1))?];
    let mut ports = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        h.set_state(gst::State::Playing)
            .map_err(|e| format!("host {i}: {e}"))?;
        let tx = h.by_name(&format!("tx{i}")).ok_or("no tx")?;
        ports.push(tx.property::<u32>("bound-port") as u16);
    }
    let flow = |port: u16| RelayFlow {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstream: SocketAddr::from(([127, 0, 0, 1], port)),
        down: ImpairConfig::default(),
        up: ImpairConfig::default(),
    };
    let relay = Relay::start_with(RelayConfig {
        flows: vec![flow(ports[0]), flow(ports[1])],
        down_bottleneck: Some(bottleneck(RateSchedule::constant(20_000_000))),
        up_bottleneck: None,
    })
    .map_err(|e| format!("relay: {e}"))?;
    let clients = [
        launch(&format!(
            "punktfunksrc name=rx port={} ! fakesink sync=false",
            relay.addrs()[0].port()
        ))?,
        launch(&format!(
            "punktfunksrc name=rx port={} ! fakesink sync=false",
            relay.addrs()[1].port()
        ))?,
    ];
    for c in &clients {
        c.set_state(gst::State::Playing)
            .map_err(|e| format!("client: {e}"))?;
    }
    let bytes = |c: &gst::Pipeline| {
        c.by_name("rx")
            .map(|rx| rx.property::<gst::Structure>("stats"))
            .and_then(|s| s.get::<u64>("bytes-received").ok())
            .unwrap_or(0)
    };
    let half = Duration::from_secs(u64::from(seconds) / 2);
    let trace = std::env::var("CONGESTION_TRACE").is_ok();
    let line = |s: u64| {
        let line: Vec<String> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let enc = h
                    .by_name(&format!("enc{i}"))
                    .map_or(0, |e| e.property::<u32>("bitrate"));
                let st = h
                    .by_name(&format!("tx{i}"))
                    .map(|t| {
                        let s = t.property::<gst::Structure>("stats");
                        s.iter()
                            .filter(|(k, _)| {
                                k.starts_with("bwe-")
                                    || k.starts_with("fec-")
                                    || k.starts_with("loss")
                            })
                            .map(|(k, v)| format!("{k}={v:?}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                format!("enc{i} {enc} kbit/s rx {} | {st}", bytes(&clients[i]))
            })
            .collect();
        eprintln!("{s}s: {}", line.join("\n     "));
    };
    let mut start = [0; 2];
    let mut t0 = Instant::now();
    // One-second steps (the benchmark's measurement window, not synchronisation); the rates
    // are measured over the second half, the trace covers both.
    for s in 0..u64::from(seconds) {
        if s == half.as_secs() {
            start = [bytes(&clients[0]), bytes(&clients[1])];
            t0 = Instant::now();
        }
        std::thread::sleep(Duration::from_secs(1));
        if trace {
            line(s);
        }
    }
    let span = t0.elapsed().as_secs_f64();
    let rates = [
        (bytes(&clients[0]) - start[0]) as f64 * 8.0 / span,
        (bytes(&clients[1]) - start[1]) as f64 * 8.0 / span,
    ];
    for p in clients.iter().chain(hosts.iter()) {
        let _ = p.set_state(gst::State::Null);
    }
    Ok(rates)
}

/// Per-frame records as CSV (diagnostics: `CONGESTION_FRAMES_DIR=dir`).
fn dump_frames(r: &RowResult, path: &Path) {
    let mut out = String::from("t_s,bytes,keyframe,encoded_ms,arrival_ms,source_lag_ms,shown\n");
    for f in &r.frames {
        let _ = writeln!(
            out,
            "{:.3},{},{},{:.2},{},{:.2},{}",
            t_of(f),
            f.bytes,
            u8::from(f.keyframe),
            f.encoded_ms(),
            f.arrival_ms().map_or(String::new(), |a| format!("{a:.2}")),
            f.source_lag_ms(),
            u8::from(f.shown)
        );
    }
    if let Err(e) = std::fs::write(path, out) {
        eprintln!("congestion: cannot write {}: {e}", path.display());
    }
}

fn main() {
    let started = std::time::Instant::now();
    let o = options();
    gst::init().expect("GStreamer initialises");
    gstpunktfunk::plugin_register_static().expect("the plugin registers");
    let step = o.step_s.max(2);
    let mut md = String::from(
        "# Congestion control (benches/congestion.rs)\n\n\
         x264 at 20 Mbit/s, 720p60 `pattern=snow`, `tune=zerolatency speed-preset=ultrafast \
         threads=1`, through the relay with a bottleneck (50 ms drop-tail queue) on the video \
         direction. Shown = decoded picture identical to the local decode.\n\n",
    );
    let (w, h) = size();
    if (w, h) != (1280, 720) {
        let _ = writeln!(md, "Picture {w}×{h} (`CONGESTION_SIZE`).\n");
    }
    let _ = writeln!(md, "Step length {step} s.\n");

    let modes: Vec<&str> = o.modes.iter().map(String::as_str).collect();

    // 1. 12 Mbit/s bottleneck vs open path.
    let seconds = (2 * step).max(6);
    if o.runs("bottleneck") {
        let _ = writeln!(
            md,
            "## 12 Mbit/s bottleneck ({seconds} s, measured from 2 s)\n\n\
         | congestion-control | path | shown | p99 capture → arrival (ms) | encoder at end (kbit/s) |\n|---|---|---|---|---|"
        );
        for &cc in &modes {
            for (label, b) in [
                (
                    "12 Mbit/s",
                    Some(bottleneck(RateSchedule::constant(12_000_000))),
                ),
                ("open", None),
            ] {
                let r = g2g::run_row(&row(cc, seconds, 2, b));
                if let Some(e) = &r.error {
                    eprintln!("congestion: {cc} {label}: {e}");
                }
                let enc = r.samples.last().map_or(0, |s| s.encoder_kbps);
                if let Ok(dir) = std::env::var("CONGESTION_FRAMES_DIR") {
                    dump_frames(
                        &r,
                        &Path::new(&dir)
                            .join(format!("{cc}_{}.csv", label.replace([' ', '/'], "_"))),
                    );
                }
                let line = format!(
                    "| {cc} | {label} | {:.1} % of {} | {} | {} |",
                    shown_share(&r) * 100.0,
                    r.measured().len(),
                    fmt_opt(p99_arrival(&r), ""),
                    if cc == "none" { BITRATE_KBPS } else { enc },
                );
                eprintln!("{line}");
                let _ = writeln!(md, "{line}");
            }
        }
    }

    // 2. Capacity steps.
    let s = f64::from(step);
    let steps = [
        (0.0, 12_000_000u64),
        (s, 30_000_000),
        (2.0 * s, 8_000_000),
        (3.0 * s, 30_000_000),
    ];
    let schedule = RateSchedule::new(
        steps
            .iter()
            .map(|(t, r)| (Duration::from_secs_f64(*t), *r))
            .collect(),
    )
    .expect("schedule");
    if o.runs("steps") {
        let _ = writeln!(
            md,
            "\n## Capacity steps 12 → 30 → 8 → 30 Mbit/s ({step} s each)\n\n\
         | congestion-control | back at 20 Mbit/s after 1st rise | after the fall: flowing again after | pictures lost | back at 20 Mbit/s after 2nd rise | encoder at the end of the 30 Mbit/s steps (kbit/s) | shown overall |\n|---|---|---|---|---|---|---|"
        );
        for (i, &cc) in modes.iter().enumerate() {
            let r = g2g::run_row(&row(cc, 4 * step, 1, Some(bottleneck(schedule.clone()))));
            if let Some(e) = &r.error {
                eprintln!("congestion: steps {cc}: {e}");
            }
            let (flowing, lost) = recovery(&r, 2.0 * s, 3.0 * s);
            let line = format!(
                "| {cc} | {} | {} | {lost} | {} | {} / {} | {:.1} % |",
                fmt_opt(back_at_max(&r.samples, s, 2.0 * s), " s"),
                fmt_opt(flowing, " s"),
                fmt_opt(back_at_max(&r.samples, 3.0 * s, 4.0 * s), " s"),
                encoder_before(&r.samples, 2.0 * s).map_or("—".into(), |k| k.to_string()),
                encoder_before(&r.samples, 4.0 * s).map_or("—".into(), |k| k.to_string()),
                shown_share(&r) * 100.0
            );
            eprintln!("{line}");
            let _ = writeln!(md, "{line}");
            if i == 0 {
                write_steps(&r.samples, &steps, &o.csv, &o.svg);
            }
        }
        let _ = writeln!(
            md,
            "\nTime series (first row): `{}`, plot `{}`.",
            o.csv.display(),
            o.svg.display()
        );
    }

    // 3. Fairness.
    let seconds = (4 * step).max(10);
    if o.runs("fairness") {
        let _ = writeln!(
            md,
            "\n## Two streams through one 20 Mbit/s bottleneck ({seconds} s, rates over the second half)\n\n\
         | congestion-control | stream 1 (Mbit/s) | stream 2 (Mbit/s) | smaller / larger |\n|---|---|---|---|"
        );
        for &cc in &modes {
            match fairness(cc, seconds) {
                Ok([a, b]) => {
                    let line = format!(
                        "| {cc} | {:.2} | {:.2} | {:.2} |",
                        a / 1e6,
                        b / 1e6,
                        a.min(b) / a.max(b).max(1.0)
                    );
                    eprintln!("{line}");
                    let _ = writeln!(md, "{line}");
                }
                Err(e) => eprintln!("congestion: fairness {cc}: {e}"),
            }
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        md,
        "\nCommand: `cargo bench --features testing --bench congestion` (arguments: `{}`); \
         {cores} CPUs, load average at the end {}; run in {:.0} s.",
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        g2g::report::load_average(),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = std::fs::write(&o.out, &md) {
        eprintln!("congestion: cannot write {}: {e}", o.out.display());
    }
    println!("{md}");
}
