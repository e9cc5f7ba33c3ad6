//! Pictures over a wide-area path: 30 ms one way, ± 5 ms jitter, Gilbert-Elliott bursts on both
//! directions, default properties. Every row runs through the project's UDP relay
//! ([`gstpunktfunk::testkit::relay`]), the same impairment applied to the video and to the back channel
//! (independently seeded), and reports against the targets of a stream that keeps every picture
//! at a latency budget of one way + one RTT.
//!
//! Rows, each at both burst settings (enter 2 % / leave 20 %: ≈ 9.1 % loss in bursts of 5;
//! enter 1 % / leave 30 %: ≈ 3.2 % in bursts of 3.3):
//!
//! - `360-1p`, `360-2p`: real x264 640x360@60 at 4 Mbit/s (`videotestsrc is-live=true
//!   pattern=snow`, so x264 spends the bitrate) through the glass-to-glass harness
//!   (`benches/g2g/`), host (sink, listening) and client (src, calling) in ONE pipeline, or in
//!   TWO pipelines of this process that share one clock and base time;
//! - `big`: real x264 at 1280x720@60, 20 Mbit/s, one pipeline (`--big 1280x720@60:20000` or
//!   `WAN_BIG` changes it; the machine may not encode it in real time: the table reports the
//!   frame rate achieved);
//! - `syn`: a synthetic 60 fps stream at ≈ 20 Mbit/s (`appsrc`, frames of known size and
//!   content, a 120 kB keyframe every 120 frames and whenever the sink forwards a keyframe
//!   request, 40–43 kB otherwise), host and client in two pipelines; delivery counted byte-exact;
//! - `srt125`, `srt250`: `srtsink` → `srtsrc` at latency 125 / 250 ms on the same stream and
//!   path as `360-1p`, as reference.
//!
//! Per row: pictures shown (identical to a local decode of the sender's stream; synthetic: frames
//! delivered byte-exact) of the frames captured from 1 s after the client started to the end of
//! the row; the first picture after the client started; capture → arrival p50 / p99 / max
//! (frames that arrived whole); the longest freeze (largest gap between consecutive shown
//! pictures, by display time, the row's end included); redundancy overhead ((parity + repair
//! bytes) / media bytes from the sink's `stats`); corrupt pictures (decoded but not identical)
//! and missing ones.
//!
//! ```text
//! cargo bench --features testing --bench wan -- [--seconds 20] [--rows 360-1p,360-2p,big,syn,srt125,srt250]
//!     [--paths 2/20,1/30] [--delay-ms 30] [--jitter-ms 5] [--big 1280x720@60:20000]
//!     [--out docs/wan.md] [--csv docs/wan.csv] [--svg docs/img/wan.svg]
//! ```
//!
//! With `--bench` (as `cargo bench` passes it): 20 s a row, all rows at both paths, into
//! `docs/` (~5.5 minutes on two cores). Without (`cargo test --benches`): a 3 s smoke run of
//! `360-1p` and `syn` at 2 %/20 % into the temporary directory. `WAN_SECONDS` overrides the row
//! length. Every port is bound as port 0 and read back; every row tears its pipelines and relay
//! down before the next starts.

#[allow(dead_code)] // the harness serves several benches
#[path = "../g2g/mod.rs"]
mod g2g;
mod real;
mod report;
mod row;
mod syn;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use g2g::annexb::{HASH_SEED, hash64};
use g2g::report::Percentiles;
use g2g::synthetic;
use g2g::{Codec, PathSpec, RowResult, RowSpec, Sample, Transport};
use gst::prelude::*;
use plotters::prelude::*;
use real::*;
use report::*;
use row::*;
use syn::*;

/// Frames before this long after the client started are start-up: only the first-picture column
/// judges them.
const WARMUP_S: f64 = 1.0;
/// Targets: percent of pictures shown per burst path (enter, leave, percent), first picture.
const TARGET_SHOWN: [(f64, f64, f64); 2] = [(0.02, 0.20, 99.5), (0.01, 0.30, 99.9)];
const TARGET_FIRST_MS: f64 = 1000.0;
/// Synthetic stream.
const SYN_FPS: u32 = 60;
const SYN_KEY_INTERVAL: u32 = 120;
const SYN_KEY_BYTES: usize = 120_000;
const SYN_DELTA_BYTES: usize = 40_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum RowKind {
    Small1p,
    Small2p,
    Big,
    Synthetic,
    Srt(u32),
}

impl RowKind {
    fn parse(s: &str) -> Option<RowKind> {
        match s {
            "360-1p" => Some(RowKind::Small1p),
            "360-2p" => Some(RowKind::Small2p),
            "big" | "720" => Some(RowKind::Big),
            "syn" => Some(RowKind::Synthetic),
            s => s
                .strip_prefix("srt")
                .and_then(|ms| ms.parse().ok())
                .map(RowKind::Srt),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Big {
    width: u32,
    height: u32,
    fps: u32,
    kbps: u32,
}

fn parse_big(s: &str) -> Option<Big> {
    let (size, kbps) = s.split_once(':')?;
    let (size, fps) = size.split_once('@')?;
    let (w, h) = size.split_once('x')?;
    Some(Big {
        width: w.parse().ok()?,
        height: h.parse().ok()?,
        fps: fps.parse().ok().filter(|f| *f > 0)?,
        kbps: kbps.parse().ok()?,
    })
}

struct Options {
    seconds: f64,
    rows: Vec<RowKind>,
    paths: Vec<(f64, f64)>,
    delay: Duration,
    jitter: Duration,
    big: Big,
    out: PathBuf,
    csv: PathBuf,
    svg: PathBuf,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "wan: {msg}\nusage: cargo bench --features testing --bench wan -- [--seconds S] \
         [--rows 360-1p,360-2p,big,syn,srt125,srt250] [--paths 2/20,1/30] [--delay-ms MS] \
         [--jitter-ms MS] [--big WxH@FPS:KBPS] [--out FILE.md] [--csv FILE.csv] [--svg FILE.svg]"
    );
    std::process::exit(2)
}

fn parse_path(s: &str) -> Option<(f64, f64)> {
    let (p, r) = s.split_once('/')?;
    let (p, r): (f64, f64) = (p.parse().ok()?, r.parse().ok()?);
    ((0.0..=100.0).contains(&p) && r > 0.0 && r <= 100.0).then_some((p / 100.0, r / 100.0))
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = g2g::args::full(&args);
    let dir = if full {
        PathBuf::from("docs")
    } else {
        std::env::temp_dir()
    };
    let env_big = std::env::var("WAN_BIG").ok();
    let mut o = Options {
        seconds: std::env::var("WAN_SECONDS")
            .ok()
            .map(|s| {
                s.parse()
                    .ok()
                    .filter(|s: &f64| (2.0..=600.0).contains(s))
                    .unwrap_or_else(|| usage("WAN_SECONDS takes 2 to 600"))
            })
            .unwrap_or(if full { 20.0 } else { 3.0 }),
        rows: if full {
            vec![
                RowKind::Small1p,
                RowKind::Small2p,
                RowKind::Big,
                RowKind::Synthetic,
                RowKind::Srt(125),
                RowKind::Srt(250),
            ]
        } else {
            vec![RowKind::Small1p, RowKind::Synthetic]
        },
        paths: if full {
            vec![(0.02, 0.20), (0.01, 0.30)]
        } else {
            vec![(0.02, 0.20)]
        },
        delay: Duration::from_millis(30),
        jitter: Duration::from_millis(5),
        big: env_big
            .as_deref()
            .map(|b| parse_big(b).unwrap_or_else(|| usage("bad WAN_BIG")))
            .unwrap_or(Big {
                width: 1280,
                height: 720,
                fps: 60,
                kbps: 20_000,
            }),
        out: dir.join("wan.md"),
        csv: dir.join("wan.csv"),
        svg: if full {
            "docs/img/wan.svg".into()
        } else {
            std::env::temp_dir().join("wan.svg")
        },
    };
    let ms = |v: String, what: &str| {
        v.parse::<u64>()
            .map(Duration::from_millis)
            .unwrap_or_else(|_| usage(&format!("bad {what}")))
    };
    g2g::args::for_each_flag(args, usage, |a, value| match a {
        "--seconds" => {
            o.seconds = value()
                .parse()
                .ok()
                .filter(|s: &f64| *s >= 2.0 && *s <= 600.0)
                .unwrap_or_else(|| usage("--seconds takes 2 to 600"))
        }
        "--rows" => o.rows = g2g::args::list(&value(), RowKind::parse, "row", usage),
        "--paths" => o.paths = g2g::args::list(&value(), parse_path, "path", usage),
        "--delay-ms" => o.delay = ms(value(), "--delay-ms"),
        "--jitter-ms" => o.jitter = ms(value(), "--jitter-ms"),
        "--big" => o.big = parse_big(&value()).unwrap_or_else(|| usage("bad --big")),
        "--out" => o.out = value().into(),
        "--csv" => o.csv = value().into(),
        "--svg" => o.svg = value().into(),
        _ => usage(&format!("unknown argument {a:?}")),
    });
    if o.rows.is_empty() || o.paths.is_empty() {
        usage("--rows and --paths must not be empty");
    }
    o
}

fn main() {
    let o = options();
    gst::init().expect("GStreamer initialises");
    gstpunktfunk::plugin_register_static().expect("the plugin registers");
    let started = Instant::now();
    let mut rows = Vec::new();
    for &path in &o.paths {
        for &kind in &o.rows {
            let row = match kind {
                RowKind::Small1p => real_row(&o, Transport::Punktfunk, SMALL, path),
                RowKind::Small2p => real_row(&o, Transport::PunktfunkSplit, SMALL, path),
                RowKind::Big => real_row(&o, Transport::Punktfunk, o.big, path),
                RowKind::Srt(ms) => real_row(&o, Transport::Srt(ms), SMALL, path),
                RowKind::Synthetic => synthetic_row(&o, path),
            };
            let m = row.summary();
            eprintln!(
                "{}/{} {} ({} pipeline(s), {}): shown {}/{}, corrupt {}, first {:?} ms, arrival p99 {:?} ms, \
                 freeze {:?} ms, overhead {:?}{} ({:.1} s)",
                path.0 * 100.0,
                path.1 * 100.0,
                row.stream,
                row.pipelines,
                row.transport,
                m.shown,
                m.measured,
                m.corrupt,
                m.first_ms.map(|f| f.round()),
                m.arrival.map(|p| p.p99),
                m.freeze_ms.map(|f| f.round()),
                row.overhead,
                row.error
                    .as_ref()
                    .map_or(String::new(), |e| format!(", error: {e}")),
                row.seconds
            );
            rows.push(row);
        }
    }
    let load = g2g::report::load_average();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut doc = String::from(
        "# Pictures over a WAN path\n\n\
         <!-- written by `cargo bench --features testing --bench wan`; see docs/BENCHMARKS.md -->\n\n",
    );
    let _ = writeln!(
        doc,
        "Command: `{}cargo bench --features testing --bench wan -- --seconds {} --paths {} --rows {}`{}. \
         Machine: {cpu}, {cores} CPUs; load average at the end {} (other work on the machine \
         shares its cores and shows as source lag, late pushes and fewer frames encoded). \
         Run in {:.0} s.\n",
        std::env::var("WAN_SINK_PROPS")
            .ok()
            .filter(|p| !p.is_empty())
            .map_or(String::new(), |p| format!("WAN_SINK_PROPS=\"{p}\" ")),
        o.seconds,
        o.paths
            .iter()
            .map(|(p, r)| format!("{}/{}", p * 100.0, r * 100.0))
            .collect::<Vec<_>>()
            .join(","),
        o.rows
            .iter()
            .map(|k| match k {
                RowKind::Small1p => "360-1p".to_string(),
                RowKind::Small2p => "360-2p".into(),
                RowKind::Big => "big".into(),
                RowKind::Synthetic => "syn".into(),
                RowKind::Srt(ms) => format!("srt{ms}"),
            })
            .collect::<Vec<_>>()
            .join(","),
        if o.rows.contains(&RowKind::Big) {
            format!(
                " (big row: {}x{}@{} at {} kbit/s)",
                o.big.width, o.big.height, o.big.fps, o.big.kbps
            )
        } else {
            String::new()
        },
        load,
        started.elapsed().as_secs_f64(),
    );
    doc.push_str(&table(&o, &rows));
    doc.push_str(&freezes(&o, &rows));
    let _ = writeln!(
        doc,
        "\n{:.0} s a row. Pictures shown: identical to a local decode of the sender's stream \
         (synthetic: delivered byte-exact), of the frames captured from {WARMUP_S:.0} s after the \
         client started to the row's end; the first second is start-up, judged by the first-picture \
         column alone. Capture → arrival over frames that arrived whole. Longest freeze: the largest \
         gap between consecutive shown pictures (display time), a stream that stops showing counted \
         to the row's end. Redundancy overhead: (parity + repair bytes) / media bytes from the \
         sink's `stats` (parity bytes = parity shards × the mean data shard where the sink reports \
         no `parity-bytes-sent`). Repaired / requests: the client's `frames-repaired`, \
         `repair-requests`, `keyframe-requests`. Encoder rate: the congestion controller sets \
         x264's `bitrate`.\n\n\
         ![pictures shown over time](img/{svg}) — per {BIN_MS:.0} ms bin: \
         [{csv}]({csv}).",
        o.seconds,
        svg = o
            .svg
            .file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned()),
        csv = o
            .csv
            .file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned()),
    );
    println!("\n{doc}");
    write(&o.out, &doc);
    write(&o.csv, &csv(&rows));
    if let Err(e) = plot(&o, &rows, &o.svg) {
        eprintln!("wan: cannot write {}: {e}", o.svg.display());
    }
    eprintln!(
        "wrote {}, {}, {}",
        o.out.display(),
        o.csv.display(),
        o.svg.display()
    );
    // A bench that measured nothing at all is broken (a row that shows nothing is a result).
    if rows.iter().all(|r| r.pics.is_empty()) {
        eprintln!("wan: no row produced any frame");
        std::process::exit(1);
    }
}
