//! Glass-to-glass latency as users run the transports: a live 720p60 high-entropy source
//! (`videotestsrc is-live=true pattern=snow`), a real encoder (x264 / x265, zero-latency,
//! ultrafast, 8 Mbit/s), a transport through the project's UDP relay at 0 / 5 / 10 % random
//! loss, a real decoder and an appsink — one pipeline per row, all rows in one process, every
//! frame timed on the pipeline clock from capture to arrival (before the decoder) and to the
//! decoded picture. The harness lives in `benches/g2g/` (see its module docs for how frames are
//! followed and which pictures count as shown).
//!
//! ```text
//! cargo bench --bench glass_to_glass -- [--frames N] [--codecs x264,x265] [--loss 0,5,10]
//!     [--transports punktfunk,rtp,srt20,srt125] [--warmup-ms MS] [--x265-fps F]
//!     [--out docs/glass_to_glass.md] [--svg docs/img/glass_to_glass.svg] [--csv FILE]
//! ```
//!
//! Defaults with `--bench` (as `cargo bench` passes it): the whole matrix, 600 measured frames a
//! row after 1 s of warm-up (x265 rows at 15 fps measure 150 frames, the same 10 s), the table
//! written to `docs/glass_to_glass.md` and the plot to `docs/img/glass_to_glass.svg`. Without
//! `--bench` (`cargo test --benches`) it is a short smoke run (x264, punktfunk and RTP, 0 and 10 %
//! loss, 120 frames) that writes into the system's temporary directory.

#[path = "g2g/mod.rs"]
mod g2g;

use std::path::PathBuf;
use std::time::Instant;

use g2g::report;
use g2g::{Codec, PathSpec, RowResult, RowSpec, Transport};

struct Options {
    frames: u32,
    codecs: Vec<Codec>,
    loss: Vec<f64>,
    transports: Vec<Transport>,
    warmup_ms: u32,
    x265_fps: u32,
    out: PathBuf,
    svg: PathBuf,
    csv: Option<PathBuf>,
}

fn list<T>(v: &str, parse: impl Fn(&str) -> Option<T>, what: &str) -> Vec<T> {
    g2g::args::list(v, parse, what, usage)
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "glass_to_glass: {msg}\nusage: cargo bench --bench glass_to_glass -- [--frames N] \
         [--codecs x264,x265] [--loss 0,5,10] [--transports punktfunk,rtp,srt20,srt125] \
         [--warmup-ms MS] [--x265-fps F] [--out FILE.md] [--svg FILE.svg] [--csv FILE.csv]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = g2g::args::full(&args);
    let tmp = std::env::temp_dir();
    let mut o = if full {
        Options {
            frames: 600,
            codecs: vec![Codec::X264, Codec::X265],
            loss: vec![0.0, 5.0, 10.0],
            transports: vec![
                Transport::Punktfunk,
                Transport::Rtp,
                Transport::Srt(20),
                Transport::Srt(125),
            ],
            warmup_ms: 1000,
            x265_fps: 15,
            out: "docs/glass_to_glass.md".into(),
            svg: "docs/img/glass_to_glass.svg".into(),
            csv: None,
        }
    } else {
        Options {
            frames: 120,
            codecs: vec![Codec::X264],
            loss: vec![0.0, 10.0],
            transports: vec![Transport::Punktfunk, Transport::Rtp],
            warmup_ms: 500,
            x265_fps: 15,
            out: tmp.join("glass_to_glass.md"),
            svg: tmp.join("glass_to_glass.svg"),
            csv: None,
        }
    };
    g2g::args::for_each_flag(args, usage, |a, value| match a {
        "--frames" => o.frames = value().parse().unwrap_or_else(|_| usage("bad --frames")),
        "--codecs" => o.codecs = list(&value(), Codec::parse, "codec"),
        "--loss" => o.loss = list(&value(), |s| s.parse().ok(), "loss"),
        "--transports" => o.transports = list(&value(), Transport::parse, "transport"),
        "--warmup-ms" => o.warmup_ms = value().parse().unwrap_or_else(|_| usage("bad --warmup-ms")),
        "--x265-fps" => o.x265_fps = value().parse().unwrap_or_else(|_| usage("bad --x265-fps")),
        "--out" => o.out = value().into(),
        "--svg" => o.svg = value().into(),
        "--csv" => o.csv = Some(value().into()),
        _ => usage(&format!("unknown argument {a:?}")),
    });
    if o.frames == 0 || o.x265_fps == 0 {
        usage("--frames and --x265-fps must be positive");
    }
    o
}

fn main() {
    let o = options();
    gst::init().expect("GStreamer initialises");
    gstpunktfunk::plugin_register_static().expect("the plugin registers");

    let mut specs = Vec::new();
    for &codec in &o.codecs {
        // x265 cannot encode a high-entropy 720p picture at 8 Mbit/s in real time at 60 fps on a
        // small machine (~40 ms of CPU a frame here); its rows run slower for the same duration.
        let fps = match codec {
            Codec::X264 => 60,
            Codec::X265 => o.x265_fps,
        };
        for &loss in &o.loss {
            for &transport in &o.transports {
                specs.push(RowSpec {
                    transport,
                    codec,
                    path: PathSpec::iid(loss),
                    frames: (u64::from(o.frames) * u64::from(fps) / 60).max(1) as u32,
                    warmup: (o.warmup_ms * fps / 1000).max(1),
                    width: 1280,
                    height: 720,
                    fps,
                    bitrate_kbps: 8000,
                    key_int: 120,
                    seed: 0x6c61_7465 ^ loss.to_bits(),
                    sink_props: String::new(),
                    bottleneck: None,
                });
            }
        }
    }

    let started = Instant::now();
    let mut rows: Vec<RowResult> = Vec::new();
    for spec in specs {
        let name = format!(
            "{} {} loss {}",
            spec.transport.label(),
            spec.codec.label(),
            spec.path.label()
        );
        let missing = spec.missing_elements();
        if !missing.is_empty() {
            eprintln!("skipping {name}: missing elements {}", missing.join(", "));
            continue;
        }
        let t = Instant::now();
        let row = g2g::run_row(&spec);
        let s = report::summarize(&row);
        let lag =
            report::Percentiles::of(row.measured().iter().map(|f| f.source_lag_ms()).collect());
        eprintln!(
            "{name}: {} measured, {} arrived, {} shown, decoded p50 {} ms, source lag p50 {} ms, \
             relay dropped {}/{} towards the listener, {}/{} towards the caller{} ({:.1} s)",
            s.measured,
            s.arrived,
            s.shown,
            s.decoded.map_or("–".into(), |p| format!("{:.1}", p.p50)),
            lag.map_or("–".into(), |p| format!("{:.1}", p.p50)),
            row.relay.0.dropped,
            row.relay.0.sent,
            row.relay.1.dropped,
            row.relay.1.sent,
            row.error
                .as_ref()
                .map_or(String::new(), |e| format!(", error: {e}")),
            t.elapsed().as_secs_f64()
        );
        rows.push(row);
    }

    let table = report::markdown(&rows);
    println!("\n{table}");
    let lag = report::Percentiles::of(
        rows.iter()
            .flat_map(|r| r.measured().iter().map(|f| f.source_lag_ms()))
            .collect(),
    );
    let doc = format!(
        "<!-- written by `cargo bench --bench glass_to_glass`; see docs/BENCHMARKS.md -->\n\n{table}\n\
         {} rows in {:.0} s; load average at the end: {}; source lag (a picture pushed later than \
         its PTS because the machine was busy) over all rows p50 / p99: {}\n",
        rows.len(),
        started.elapsed().as_secs_f64(),
        report::load_average(),
        lag.map_or("–".into(), |p| format!("{:.1} / {:.1} ms", p.p50, p.p99)),
    );
    for p in [&o.out, &o.svg].into_iter().chain(o.csv.as_ref()) {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).expect("output directory");
        }
    }
    std::fs::write(&o.out, doc).expect("table written");
    report::write_svg(
        &rows,
        "Glass to glass, 720p, 8 Mbit/s, one pipeline: solid capture → decoded, dashed capture → arrival",
        &o.svg,
    )
    .expect("plot written");
    if let Some(csv) = &o.csv {
        std::fs::write(csv, report::csv(&rows)).expect("csv written");
    }
    eprintln!(
        "wrote {} and {} in {:.0} s",
        o.out.display(),
        o.svg.display(),
        started.elapsed().as_secs_f64()
    );
    // A smoke run must fail loudly when nothing got through.
    if rows.iter().any(|r| r.error.is_some())
        || rows.iter().all(|r| report::summarize(r).shown == 0)
    {
        eprintln!("glass_to_glass: some rows failed");
        std::process::exit(1);
    }
}
