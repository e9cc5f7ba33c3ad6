//! A/V sync through the elements: a host test source marks one video frame and one audio click
//! at the same capture instant once a second; the client's two sinks run with `sync=true`
//! (default properties otherwise) and record when each plays its mark. Prints, per loss rate,
//! how far apart they played (click − frame) and how many marks were matched.
//!
//! `cargo bench --features gst,testing --bench av_sync -- [--seconds N]` (60 s per row by
//! default). Results and the command are in `docs/audio.md`, "A/V sync".

#[path = "av_sync/harness.rs"]
mod harness;

use std::time::Duration;

const LOSS_ROWS: [f64; 2] = [0.0, 0.05];
const SEED: u64 = 0xA5_5EED;

fn seconds_arg() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn field(s: &Option<gst::Structure>, name: &str) -> String {
    s.as_ref()
        .and_then(|s| s.value(name).ok())
        .map(|v| {
            v.get::<u64>()
                .map(|x| x.to_string())
                .or_else(|_| v.get::<u32>().map(|x| x.to_string()))
                .or_else(|_| v.get::<i64>().map(|x| x.to_string()))
                .unwrap_or_else(|_| format!("{v:?}"))
        })
        .unwrap_or_else(|| "-".into())
}

fn main() {
    // `cargo bench` passes `--bench`; only `--seconds` matters here.
    let seconds = seconds_arg();
    println!("A/V sync, sync=true on both client sinks, {seconds} s per row, one mark a second");
    println!(
        "{:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8}",
        "loss",
        "sent",
        "pairs",
        "video",
        "audio",
        "p50 µs",
        "p99 µs",
        "max |µs|",
        "≤10 ms",
        "concealed",
        "av-skew",
        "fec %"
    );
    for loss in LOSS_ROWS {
        let r = harness::run(loss, Duration::from_secs(seconds), SEED);
        let mut s = r.skews_us.clone();
        s.sort_unstable();
        let max_abs = s.iter().map(|x| x.abs()).max().unwrap_or(0);
        let within = s.iter().filter(|x| x.abs() <= 10_000).count();
        println!(
            "{:>5.1}% {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>5}/{:<3} {:>10} {:>10} {:>8}",
            loss * 100.0,
            r.marks_sent,
            s.len(),
            r.video_marks,
            r.audio_marks,
            percentile(&s, 0.5),
            percentile(&s, 0.99),
            max_abs,
            within,
            s.len(),
            field(&r.client_stats, "audio-packets-concealed"),
            field(&r.client_stats, "av-skew-us"),
            field(&r.host_stats, "audio-fec-percent"),
        );
    }
}
