//! What every row reduces to: its pictures, their summary, and the sink's stats samples.

use super::*;

/// One picture (frame) of a row, times in ms since the client started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pic {
    /// Capture (real) or push into the sink (synthetic).
    pub(crate) t_ms: f64,
    /// Identical to what was sent.
    pub(crate) shown: bool,
    /// Decoded / delivered but not identical.
    pub(crate) corrupt: bool,
    /// Capture → arrival at the receiver's output, frames that arrived whole.
    pub(crate) arrival_ms: Option<f64>,
    /// When it was shown (decoded / delivered), shown pictures only.
    pub(crate) shown_at_ms: Option<f64>,
    /// Frame index in the sender's stream, and whether it is a keyframe (real codec rows).
    pub(crate) index: u32,
    pub(crate) keyframe: bool,
    /// When the encoder produced it (real codec rows).
    pub(crate) encoded_ms: Option<f64>,
}

pub(crate) struct Row {
    pub(crate) stream: String,
    pub(crate) pipelines: &'static str,
    pub(crate) transport: String,
    pub(crate) path: (f64, f64),
    /// Every frame of the row, in capture order.
    pub(crate) pics: Vec<Pic>,
    /// Where the measured window ends (ms since the client started).
    pub(crate) end_ms: f64,
    pub(crate) frame_ms: f64,
    pub(crate) overhead: Option<f64>,
    pub(crate) rtt_ms: Option<f64>,
    /// Repaired / repair requests / keyframe requests (punktfunk rows).
    pub(crate) repair: Option<(u64, u64, u64)>,
    /// Frame rate the sender achieved over the row (real codec rows).
    pub(crate) achieved_fps: Option<f64>,
    /// The encoder's bitrate at the end (the congestion controller sets it).
    pub(crate) encoder_kbps: Option<u32>,
    pub(crate) error: Option<String>,
    pub(crate) seconds: f64,
}

impl Row {
    /// A row not run yet: nothing measured.
    pub(crate) fn new(
        stream: String,
        pipelines: &'static str,
        transport: String,
        path: (f64, f64),
        fps: u32,
    ) -> Row {
        Row {
            stream,
            pipelines,
            transport,
            path,
            pics: Vec::new(),
            end_ms: 0.0,
            frame_ms: 1e3 / f64::from(fps),
            overhead: None,
            rtt_ms: None,
            repair: None,
            achieved_fps: None,
            encoder_kbps: None,
            error: None,
            seconds: 0.0,
        }
    }
}

pub(crate) struct Summary {
    pub(crate) measured: usize,
    pub(crate) shown: usize,
    pub(crate) corrupt: usize,
    pub(crate) first_ms: Option<f64>,
    pub(crate) arrival: Option<Percentiles>,
    pub(crate) freeze_ms: Option<f64>,
}

impl Row {
    pub(crate) fn measured(&self) -> impl Iterator<Item = &Pic> {
        self.pics
            .iter()
            .filter(move |p| p.t_ms >= WARMUP_S * 1e3 && p.t_ms <= self.end_ms)
    }

    pub(crate) fn summary(&self) -> Summary {
        let measured: Vec<&Pic> = self.measured().collect();
        let first_ms = self
            .pics
            .iter()
            .filter_map(|p| p.shown_at_ms)
            .min_by(f64::total_cmp);
        // Display gaps between consecutive shown pictures of the window, and from the last one
        // to the end of the window (a stream that stops showing is one long freeze).
        let mut shown_at: Vec<f64> = measured.iter().filter_map(|p| p.shown_at_ms).collect();
        shown_at.sort_by(f64::total_cmp);
        let mut freeze = shown_at
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g))));
        if let (Some(last_shown), Some(last)) = (
            measured.iter().rev().find(|p| p.shown),
            measured.last().filter(|p| !p.shown),
        ) {
            let tail = last.t_ms - last_shown.t_ms + self.frame_ms;
            freeze = Some(freeze.map_or(tail, |f| f.max(tail)));
        }
        if shown_at.is_empty() && !measured.is_empty() {
            freeze = Some(self.end_ms - WARMUP_S * 1e3);
        }
        Summary {
            measured: measured.len(),
            shown: measured.iter().filter(|p| p.shown).count(),
            corrupt: measured.iter().filter(|p| p.corrupt).count(),
            first_ms,
            arrival: Percentiles::of(measured.iter().filter_map(|p| p.arrival_ms).collect()),
            freeze_ms: freeze,
        }
    }
}

/// (parity + repair bytes) / media bytes, from the sink's counters. Parity bytes are the sink's
/// `parity-bytes-sent` where it has one, else parity shards × the mean data shard's payload.
pub(crate) fn overhead(s: &Sample) -> Option<f64> {
    if s.payload_bytes == 0 {
        return None;
    }
    let parity = if s.parity_bytes > 0 {
        s.parity_bytes as f64
    } else if s.data_shards > 0 {
        s.parity_shards as f64 * s.payload_bytes as f64 / s.data_shards as f64
    } else {
        0.0
    };
    Some((parity + s.repair_bytes as f64) / s.payload_bytes as f64)
}

pub(crate) fn stats_sample(sink: &gst::Element) -> Sample {
    let st = sink.property::<gst::Structure>("stats");
    let get = |f: &str| st.get::<u64>(f).unwrap_or(0);
    Sample {
        data_shards: get("data-shards-sent"),
        parity_shards: get("parity-shards-sent"),
        repair_shards: get("repair-shards"),
        repair_bytes: get("repair-bytes"),
        payload_bytes: get("payload-bytes-sent"),
        parity_bytes: get("parity-bytes-sent"),
        rtt_us: get("rtt-us"),
        ..Sample::default()
    }
}

pub(crate) fn path_spec(o: &Options, (p, r): (f64, f64)) -> PathSpec {
    PathSpec::gilbert(p, r).with_delay(o.delay, o.jitter)
}

pub(crate) fn seed_of((p, r): (f64, f64), salt: u64) -> u64 {
    0x7761_6e00 ^ p.to_bits().rotate_left(7) ^ r.to_bits() ^ salt
}
