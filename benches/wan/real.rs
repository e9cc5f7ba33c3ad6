//! Real codec rows through the glass-to-glass harness (`benches/g2g/`).

use super::*;

/// The 640x360 stream of the `360-*` and SRT rows.
pub(crate) const SMALL: Big = Big {
    width: 640,
    height: 360,
    fps: 60,
    kbps: 4000,
};

/// A real-codec row: `transport` (one or two pipelines, or SRT) carrying `stream`.
pub(crate) fn real_row(o: &Options, transport: Transport, stream: Big, path: (f64, f64)) -> Row {
    let Big {
        width,
        height,
        fps,
        kbps,
    } = stream;
    let pipelines = if transport == Transport::PunktfunkSplit {
        "2"
    } else {
        "1"
    };
    let stream = format!(
        "x264 {width}x{height}@{fps} {} Mbit/s",
        f64::from(kbps) / 1e3
    );
    let total = (o.seconds * f64::from(fps)).round() as u32;
    let spec = RowSpec {
        transport,
        codec: Codec::X264,
        path: path_spec(o, path),
        frames: total.saturating_sub(fps).max(1),
        warmup: fps,
        width,
        height,
        fps,
        bitrate_kbps: kbps,
        key_int: 2 * fps,
        seed: seed_of(path, u64::from(width)),
        sink_props: std::env::var("WAN_SINK_PROPS").unwrap_or_default(),
        bottleneck: None,
    };
    let transport_name = match transport {
        Transport::PunktfunkSplit => "punktfunk".into(),
        t => t.label(),
    };
    let mut row = Row::new(stream, pipelines, transport_name, path, fps);
    let missing = spec.missing_elements();
    if !missing.is_empty() {
        row.error = Some(format!("missing elements {}", missing.join(", ")));
        return row;
    }
    let t = Instant::now();
    let r = g2g::run_row(&spec);
    row.seconds = t.elapsed().as_secs_f64();
    fill_real(&mut row, &r);
    row
}

pub(crate) fn fill_real(row: &mut Row, r: &RowResult) {
    let ms = |ns: u64| (ns as f64 - r.client_start_ns as f64) / 1e6;
    let last_index = r.spec.warmup + r.spec.frames;
    row.pics = r
        .frames
        .iter()
        .filter(|f| f.index < last_index)
        .map(|f| Pic {
            t_ms: ms(f.capture_ns),
            shown: f.shown,
            corrupt: f.decoded_ns.is_some() && !f.shown,
            arrival_ms: f.arrival_ms(),
            shown_at_ms: f.decoded_ns.filter(|_| f.shown).map(ms),
            index: f.index,
            keyframe: f.keyframe,
            encoded_ms: Some(ms(f.encoded_ns)),
        })
        .collect();
    // The window ends with the last frame the row asked for, at the frame rate asked for, or
    // later where the encoder was slower: a pipeline that stalls shows its stall as a freeze.
    let asked = (f64::from(last_index) - 1.0) * row.frame_ms;
    row.end_ms = row.pics.last().map_or(asked, |p| p.t_ms.max(asked));
    let enc: Vec<u64> = r.frames.iter().map(|f| f.encoded_ns).collect();
    if let (Some(a), Some(b)) = (enc.first(), enc.last())
        && b > a
    {
        row.achieved_fps = Some((enc.len() - 1) as f64 / ((b - a) as f64 / 1e9));
    }
    if let Some(last) = r.samples.last() {
        if std::env::var_os("WAN_DEBUG").is_some() {
            eprintln!("last sample: {last:?}");
        }
        row.encoder_kbps = Some(last.encoder_kbps);
        row.overhead = overhead(last);
        row.repair = Some((
            last.frames_repaired,
            last.repair_requests,
            last.keyframe_requests,
        ));
    }
    row.rtt_ms = r
        .samples
        .iter()
        .rev()
        .find(|s| s.rtt_us > 0)
        .map(|s| s.rtt_us as f64 / 1e3);
    row.error.clone_from(&r.error);
}
