//! What the glass-to-glass harness writes: per-row summaries, the Markdown table, the latency
//! CDF plot (SVG, one panel per codec × path, one colour per transport) and the per-frame CSV.
//!
//! Conventions, the same in all three: only frames after a row's warm-up count; latencies are
//! capture → arrival over frames that arrived intact and capture → decoded over pictures shown
//! (identical to the local decode); shares are of all measured frames, so a CDF tops out at the
//! share of frames that made it.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::RowResult;

/// Percentiles of one latency, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles; `None` for no samples.
    pub fn of(mut v: Vec<f64>) -> Option<Percentiles> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Percentiles {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: v[v.len() - 1],
        })
    }
}

/// One row, summarised.
#[derive(Debug, Clone)]
pub struct Summary {
    pub measured: usize,
    pub arrived: usize,
    pub shown: usize,
    pub encoded: Option<Percentiles>,
    pub arrival: Option<Percentiles>,
    pub decoded: Option<Percentiles>,
    pub first_shown: Option<u32>,
    /// punktfunk: (the src's reported frame age p50/p99 and its frame count, the harness's
    /// PTS → arrival p50/p99 over the same second of frames), ms.
    pub src_age: Option<((f64, f64, u64), Option<Percentiles>)>,
}

pub fn summarize(row: &RowResult) -> Summary {
    let m = row.measured();
    let arrival: Vec<f64> = m.iter().filter_map(|f| f.arrival_ms()).collect();
    let decoded: Vec<f64> = m.iter().filter_map(|f| f.decoded_ms()).collect();
    Summary {
        measured: m.len(),
        arrived: arrival.len(),
        encoded: Percentiles::of(m.iter().map(|f| f.encoded_ms()).collect()),
        shown: decoded.len(),
        arrival: Percentiles::of(arrival),
        decoded: Percentiles::of(decoded),
        first_shown: row.first_shown(),
        src_age: row.src_frame_age.map(|a| {
            // The frames the src's window covered (arrived in the second before the read),
            // measured as the src measures: from the PTS (the host's capture time on the
            // wire), not from when the source pushed the picture (they differ by the source
            // lag of a busy machine).
            let window: Vec<f64> = m
                .iter()
                .filter_map(|f| {
                    let t = f.arrival_ns?;
                    (t <= a.read_at_ns && a.read_at_ns - t <= 1_000_000_000)
                        .then(|| t.saturating_sub(f.pts_ns) as f64 / 1e6)
                })
                .collect();
            ((a.p50_ms, a.p99_ms, a.frames), Percentiles::of(window))
        }),
    }
}

/// `src p50 / p99 (harness p50 / p99), n frames` for punktfunk rows.
fn src_age_cell(a: Option<((f64, f64, u64), Option<Percentiles>)>) -> String {
    match a {
        Some(((p50, p99, n), Some(h))) => {
            format!(
                "{p50:.1} / {p99:.1} ({:.1} / {:.1}), {n} frames",
                h.p50, h.p99
            )
        }
        Some(((p50, p99, n), None)) => format!("{p50:.1} / {p99:.1}, {n} frames"),
        None => "–".into(),
    }
}

fn pct(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "–".into();
    }
    let p = 100.0 * part as f64 / whole as f64;
    if part == whole {
        "100 %".into()
    } else {
        format!("{p:.1} %")
    }
}

fn cell(p: Option<Percentiles>) -> String {
    match p {
        Some(p) => format!("{:.1} / {:.1} / {:.1} / {:.1}", p.p50, p.p90, p.p99, p.max),
        None => "–".into(),
    }
}

/// The Markdown table, one line per row.
pub fn markdown(rows: &[RowResult]) -> String {
    let mut s = String::new();
    s.push_str(
        "| transport | codec | loss | capture → arrival, ms<br>p50 / p90 / p99 / max \
         | capture → decoded, ms<br>p50 / p90 / p99 / max | arrived | shown | first picture \
         | encode, ms<br>p50 / p99 \
         | src frame age, ms<br>p50 / p99 (harness PTS → arrival, same frames) |\n\
         |---|---|---|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let sm = summarize(r);
        let mut shown = pct(sm.shown, sm.measured);
        if let Some(e) = &r.error {
            shown = format!("{shown} (error: {})", e.replace('|', "/"));
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.spec.transport.label(),
            r.spec.codec.label(),
            r.spec.path.label(),
            cell(sm.arrival),
            cell(sm.decoded),
            pct(sm.arrived, sm.measured),
            shown,
            sm.first_shown
                .map_or("never".into(), |i| format!("frame {i}")),
            sm.encoded
                .map_or("–".into(), |p| format!("{:.1} / {:.1}", p.p50, p.p99)),
            src_age_cell(sm.src_age),
        );
    }
    s
}

/// Every frame of every row (warm-up included, flagged), for plots and checks elsewhere.
pub fn csv(rows: &[RowResult]) -> String {
    let mut s = String::from(
        "transport,codec,loss_percent,frame,warmup,keyframe,bytes,pts_ns,capture_ns,encoded_ns,\
         arrival_ns,decoded_ns,shown\n",
    );
    let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    for r in rows {
        for f in &r.frames {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.spec.transport.label(),
                r.spec.codec.label(),
                r.spec.path.loss_percent,
                f.index,
                f.index < r.spec.warmup,
                f.keyframe,
                f.bytes,
                f.pts_ns,
                f.capture_ns,
                f.encoded_ns,
                opt(f.arrival_ns),
                opt(f.decoded_ns),
                f.shown
            );
        }
    }
    s
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(214, 39, 40),  // punktfunk first: red
    RGBColor(31, 119, 180), // blue
    RGBColor(44, 160, 44),  // green
    RGBColor(255, 127, 14), // orange
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Steps of an empirical CDF over `n` frames, extended flat to `x_max`.
fn cdf(mut v: Vec<f64>, n: usize, x_min: f64, x_max: f64) -> Vec<(f64, f64)> {
    v.sort_by(f64::total_cmp);
    let n = n.max(1) as f64;
    let mut pts = vec![(x_min, 0.0)];
    for (i, x) in v.iter().enumerate() {
        let x = x.clamp(x_min, x_max);
        pts.push((x, i as f64 / n));
        pts.push((x, (i + 1) as f64 / n));
    }
    pts.push((x_max, v.len() as f64 / n));
    pts
}

fn unique<T: PartialEq + Clone>(it: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = Vec::new();
    for x in it {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    v
}

/// The CDF plot: a panel per codec (rows) × path (columns), a colour per transport; solid lines
/// capture → decoded (pictures shown), dashed capture → arrival. Log-scaled latency axis.
pub fn write_svg(rows: &[RowResult], title: &str, path: &Path) -> Result<(), Box<dyn Error>> {
    let codecs = unique(rows.iter().map(|r| r.spec.codec));
    let paths = unique(rows.iter().map(|r| r.spec.path.label()));
    let transports = unique(rows.iter().map(|r| r.spec.transport));
    let largest = rows
        .iter()
        .flat_map(|r| {
            r.measured()
                .iter()
                .flat_map(|f| [f.arrival_ms(), f.decoded_ms()])
                .flatten()
                .collect::<Vec<_>>()
        })
        .fold(10.0f64, f64::max);
    let (x_min, x_max) = (1.0, (largest * 1.15).min(5_000.0));

    let (pw, ph) = (460u32, 340u32);
    let size = (
        pw * paths.len().max(1) as u32,
        ph * codecs.len().max(1) as u32 + 40,
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 18))?;
    let panels = root.split_evenly((codecs.len().max(1), paths.len().max(1)));
    for (ci, codec) in codecs.iter().enumerate() {
        for (pi, path_label) in paths.iter().enumerate() {
            let area = &panels[ci * paths.len() + pi];
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("{}, loss {path_label}", codec.label()),
                    ("sans-serif", 15),
                )
                .margin(10)
                .x_label_area_size(34)
                .y_label_area_size(44)
                .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..1.0)?;
            chart
                .configure_mesh()
                .x_desc("latency from capture, ms (log)")
                .y_desc("share of frames")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.1}"))
                .draw()?;
            for (ti, transport) in transports.iter().enumerate() {
                let Some(row) = rows.iter().find(|r| {
                    r.spec.codec == *codec
                        && r.spec.path.label() == *path_label
                        && r.spec.transport == *transport
                }) else {
                    continue;
                };
                let color = PALETTE[ti % PALETTE.len()];
                let m = row.measured();
                let decoded = m.iter().filter_map(|f| f.decoded_ms()).collect();
                let arrival = m.iter().filter_map(|f| f.arrival_ms()).collect();
                chart
                    .draw_series(LineSeries::new(
                        cdf(decoded, m.len(), x_min, x_max),
                        color.stroke_width(2),
                    ))?
                    .label(transport.label())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                chart.draw_series(DashedLineSeries::new(
                    cdf(arrival, m.len(), x_min, x_max),
                    5,
                    4,
                    color.stroke_width(1),
                ))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

/// The machine's load average over 1, 5 and 15 minutes as `/proc/loadavg` gives it ("0.42 0.66
/// 0.64"; empty where it cannot be read): what each bench writes beside its numbers.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
