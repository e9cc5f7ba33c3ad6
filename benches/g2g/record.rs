//! What a row measured: per-frame records, the row's result, and the punktfunk elements'
//! periodic stats samples and frame-age report.

use super::*;

/// What happened to one frame; times are pipeline running times in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct FrameRecord {
    pub index: u32,
    /// The picture's PTS as running time (its nominal capture time).
    pub pts_ns: u64,
    pub capture_ns: u64,
    pub encoded_ns: u64,
    pub bytes: usize,
    pub keyframe: bool,
    pub arrival_ns: Option<u64>,
    pub decoded_ns: Option<u64>,
    /// Decoded and identical to the local decode of the sender's stream.
    pub shown: bool,
}

impl FrameRecord {
    /// How much later than its PTS the source pushed the picture: zero when the machine keeps
    /// up, a backlog when the source and encoder thread is starved of CPU.
    pub fn source_lag_ms(&self) -> f64 {
        self.capture_ns.saturating_sub(self.pts_ns) as f64 / 1e6
    }

    pub fn encoded_ms(&self) -> f64 {
        self.encoded_ns.saturating_sub(self.capture_ns) as f64 / 1e6
    }

    pub fn arrival_ms(&self) -> Option<f64> {
        self.arrival_ns
            .map(|t| t.saturating_sub(self.capture_ns) as f64 / 1e6)
    }

    pub fn decoded_ms(&self) -> Option<f64> {
        if !self.shown {
            return None;
        }
        self.decoded_ns
            .map(|t| t.saturating_sub(self.capture_ns) as f64 / 1e6)
    }
}

/// A finished row: every frame encoded up to the end of the measurement (warm-up included).
#[derive(Debug, Clone)]
pub struct RowResult {
    pub spec: RowSpec,
    pub frames: Vec<FrameRecord>,
    /// Errors posted on the bus, or why the row could not run.
    pub error: Option<String>,
    /// Relay counters: (towards the listener, towards the caller).
    pub relay: (ImpairStats, ImpairStats),
    /// punktfunk rows: the frame age `punktfunksrc` reports in `stats`, read when the last
    /// measured frame arrived.
    pub src_frame_age: Option<SrcFrameAge>,
    /// Sampled every ~100 ms while the row runs (punktfunk rows only).
    pub samples: Vec<Sample>,
    /// Running time at which the receiving side (the caller) was set to PLAYING.
    pub client_start_ns: u64,
}

/// The names `bwe-state` takes (so a [`Sample`] can keep one without allocating).
pub(super) const BWE_STATES: [&str; 5] = ["off", "startup", "increase", "drain", "hold"];

/// The encoder's bitrate and the sender's estimate at one instant of a row.
#[derive(Debug, Clone, Copy, Default)]
#[allow(dead_code)] // read by benches/congestion.rs, not by glass_to_glass.rs
pub struct Sample {
    /// Seconds since the relay started (the bottleneck's rate schedule counts from then).
    pub t_s: f64,
    /// The encoder's `bitrate` property in kbit/s.
    pub encoder_kbps: u32,
    /// `bwe-estimate` and `bwe-target-bitrate` of the sink's stats, bit/s.
    pub estimate_bps: u64,
    pub target_bps: u64,
    /// `bwe-link-rate` (bit/s) and `bwe-state` ("" before a sample, "?" for a name not known).
    pub link_rate_bps: u64,
    pub state: &'static str,
    /// Frames the receiver pushed so far (`frames-received`) and gave up (`frames-lost`).
    pub frames_received: u64,
    pub frames_lost: u64,
    // Loss resilience (benches/loss_resilience.rs), cumulative counters of the sink's stats:
    /// `data-shards-sent`, `parity-shards-sent`, `repair-shards`, `repair-bytes`,
    /// `payload-bytes-sent`, and its smoothed `rtt-us`.
    pub data_shards: u64,
    pub parity_shards: u64,
    pub repair_shards: u64,
    pub repair_bytes: u64,
    pub payload_bytes: u64,
    /// `parity-bytes-sent` where the sink reports it (0 where it does not).
    pub parity_bytes: u64,
    pub rtt_us: u64,
    /// The src's `repair-requests`, `frames-repaired` and `keyframe-requests`.
    pub repair_requests: u64,
    pub frames_repaired: u64,
    pub keyframe_requests: u64,
    /// The src's `packets-received` and `packets-lost` (the loss it saw: the relay's plus any
    /// socket buffer overrun of a busy machine).
    pub packets_received: u64,
    pub packets_lost: u64,
}

/// `punktfunksrc`'s own frame-age report: capture (host PTS) → complete, over the
/// frames it delivered in the second before the newest.
#[derive(Debug, Clone, Copy)]
pub struct SrcFrameAge {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub frames: u64,
    /// Arrival (running time) of the frame at which the stats were read; the window is the
    /// second before it.
    pub read_at_ns: u64,
}

/// Reads the frame-age fields of a `punktfunksrc`'s `stats`.
pub(super) fn src_frame_age(src: &gst::Element, read_at_ns: u64) -> Option<SrcFrameAge> {
    let s = src.property::<gst::Structure>("stats");
    let us = |f: &str| s.get::<u64>(f).ok();
    Some(SrcFrameAge {
        p50_ms: us("frame-age-p50-us")? as f64 / 1e3,
        p99_ms: us("frame-age-p99-us")? as f64 / 1e3,
        frames: us("frame-age-frames")?,
        read_at_ns,
    })
}

impl RowResult {
    /// The frames that count: after the warm-up, up to the measured number.
    pub fn measured(&self) -> &[FrameRecord] {
        let start = (self.spec.warmup as usize).min(self.frames.len());
        let end = (start + self.spec.frames as usize).min(self.frames.len());
        &self.frames[start..end]
    }

    /// The first frame shown, counting from the start of the row.
    pub fn first_shown(&self) -> Option<u32> {
        self.frames.iter().find(|f| f.shown).map(|f| f.index)
    }
}
