//! Frame timing: what the host says about when a frame was captured and sent, and how the
//! client turns that into a frame's age at arrival.
//!
//! Every video shard carries [`FrameTiming`] (the host's capture time of the access unit, its
//! duration, and when the host's sink got it); the host's clock is microseconds of its
//! monotonic clock. The client combines it with its own arrival times and the clock offset from
//! [`crate::protocol::time::clock::ClockOffset`] into an [`AgeSample`] per delivered frame:
//!
//! ```text
//! capture ──encode──▶ render ──host──▶ last data sent ──network──▶ last data shard ──fec──▶ complete
//!         (encoder,           (sink: FEC, seal,            (wire, queues,          (waiting for
//!          pipeline)           pacing)                      reorder, repair)         parity)
//! ```
//!
//! `age = complete − capture` (in the host's clock) and is the sum of the four parts. This
//! module is pure arithmetic and bounded windows of samples; it reads no clock.

/// Bytes of [`FrameTiming`] on the wire.
pub(crate) const FRAME_TIMING_LEN: usize = 20;

/// Per-frame timing sent with every shard of the frame (host clock, microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameTiming {
    /// Host clock when the frame was captured (its PTS mapped to the host's monotonic clock);
    /// 0 when the host does not know.
    pub capture_us: u64,
    /// The frame's duration (0 = unknown).
    pub duration_us: u32,
    /// capture → the sink had the access unit (the encoder's and pipeline's share).
    pub render_offset_us: u32,
    /// render → the scheduled send time of the frame's last data datagram (the sink's share:
    /// FEC, sealing, pacing; parity follows the data, a lossless frame completes without it).
    pub send_span_us: u32,
}

impl FrameTiming {
    /// Writes the timing into the first `FRAME_TIMING_LEN` bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.capture_us.to_be_bytes());
        out[8..12].copy_from_slice(&self.duration_us.to_be_bytes());
        out[12..16].copy_from_slice(&self.render_offset_us.to_be_bytes());
        out[16..20].copy_from_slice(&self.send_span_us.to_be_bytes());
    }

    /// Parses the 20 bytes at the start of `buf`; `None` when short.
    pub fn decode(buf: &[u8]) -> Option<FrameTiming> {
        let b = buf.get(..FRAME_TIMING_LEN)?;
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut c = [0u8; 8];
        c.copy_from_slice(&b[..8]);
        Some(FrameTiming {
            capture_us: u64::from_be_bytes(c),
            duration_us: u32_at(8),
            render_offset_us: u32_at(12),
            send_span_us: u32_at(16),
        })
    }

    /// Host clock time of render (capture + render offset).
    pub(crate) fn render_us(&self) -> u64 {
        self.capture_us
            .saturating_add(u64::from(self.render_offset_us))
    }

    /// Host clock time the last data datagram was scheduled to leave.
    pub(crate) fn last_sent_us(&self) -> u64 {
        self.render_us()
            .saturating_add(u64::from(self.send_span_us))
    }
}

/// Arrival times of one frame at the client (local clock, µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// The last data shard that arrived before the frame completed (or the completing one).
    pub last_data_us: u64,
    /// When the frame could be delivered whole.
    pub complete_us: u64,
}

/// One frame's age at arrival and its parts, µs. Parts that would be negative from clock
/// estimation error are clamped to 0; `age_us` is computed directly, not summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AgeSample {
    pub age_us: u64,
    pub encode_us: u64,
    pub host_us: u64,
    pub network_us: u64,
    pub fec_wait_us: u64,
}

impl AgeSample {
    /// Splits a frame's age. `offset_us` is host − local (from the clock estimator). `None`
    /// when the host sent no capture time.
    pub(crate) fn new(t: &FrameTiming, a: &Arrival, offset_us: i64) -> Option<AgeSample> {
        if t.capture_us == 0 {
            return None;
        }
        let to_host = |local: u64| (local as i128 + offset_us as i128).max(0) as u64;
        let complete = to_host(a.complete_us);
        let last_data = to_host(a.last_data_us.min(a.complete_us));
        let sent = t.last_sent_us();
        Some(AgeSample {
            age_us: complete.saturating_sub(t.capture_us),
            encode_us: u64::from(t.render_offset_us),
            host_us: u64::from(t.send_span_us),
            network_us: last_data.saturating_sub(sent),
            fec_wait_us: a.complete_us.saturating_sub(a.last_data_us),
        })
    }
}

/// Samples kept for percentiles: at 60 fps, about 8.5 s — longer than any sensible stats
/// interval, bounded whatever the frame rate.
pub(crate) const AGE_WINDOW: usize = 512;

/// The most recent frame ages, for p50/p99 over a stats interval.
#[derive(Debug, Clone)]
pub(crate) struct AgeWindow {
    samples: Vec<AgeSample>,
    next: usize,
    /// Samples added since the last [`AgeWindow::take_summary`].
    fresh: usize,
}

impl Default for AgeWindow {
    fn default() -> Self {
        AgeWindow {
            samples: Vec::with_capacity(AGE_WINDOW),
            next: 0,
            fresh: 0,
        }
    }
}

/// Percentiles of frame age and its parts (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgeSummary {
    /// Frames summarised.
    pub frames: u64,
    /// Median age at arrival, µs.
    pub age_p50_us: u64,
    /// 99th percentile of the age at arrival, µs.
    pub age_p99_us: u64,
    /// Median encode time (capture to the sink), µs.
    pub encode_p50_us: u64,
    /// Median time in the host (sink to send), µs.
    pub host_p50_us: u64,
    /// Median network time, µs.
    pub network_p50_us: u64,
    /// 99th percentile of the network time, µs.
    pub network_p99_us: u64,
    /// Median wait for FEC or repair, µs.
    pub fec_wait_p50_us: u64,
    /// 99th percentile of the wait for FEC or repair, µs.
    pub fec_wait_p99_us: u64,
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i.min(v.len() - 1)]
}

impl AgeWindow {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&mut self, s: AgeSample) {
        if self.samples.len() < AGE_WINDOW {
            self.samples.push(s);
        } else {
            self.samples[self.next] = s;
        }
        self.next = (self.next + 1) % AGE_WINDOW;
        self.fresh = (self.fresh + 1).min(AGE_WINDOW);
    }

    /// Summary over the newest `n` samples (all kept samples when `n` is larger).
    pub(crate) fn summary_of_last(&self, n: usize) -> AgeSummary {
        let len = self.samples.len();
        let n = n.min(len);
        let newest: Vec<&AgeSample> = (0..n)
            .map(|i| &self.samples[(self.next + AGE_WINDOW - 1 - i) % AGE_WINDOW])
            .collect();
        let col = |f: fn(&AgeSample) -> u64| newest.iter().map(|s| f(s)).collect::<Vec<u64>>();
        let (mut age, mut enc, mut host) =
            (col(|s| s.age_us), col(|s| s.encode_us), col(|s| s.host_us));
        let (mut net, mut fec) = (col(|s| s.network_us), col(|s| s.fec_wait_us));
        AgeSummary {
            frames: n as u64,
            age_p50_us: percentile(&mut age, 0.5),
            age_p99_us: percentile(&mut age, 0.99),
            encode_p50_us: percentile(&mut enc, 0.5),
            host_p50_us: percentile(&mut host, 0.5),
            network_p50_us: percentile(&mut net, 0.5),
            network_p99_us: percentile(&mut net, 0.99),
            fec_wait_p50_us: percentile(&mut fec, 0.5),
            fec_wait_p99_us: percentile(&mut fec, 0.99),
        }
    }

    /// Summary over the samples added since the previous call (a stats interval); when none
    /// were added, over the whole window.
    #[cfg(test)]
    pub(crate) fn take_summary(&mut self) -> AgeSummary {
        let n = if self.fresh == 0 {
            AGE_WINDOW
        } else {
            self.fresh
        };
        self.fresh = 0;
        self.summary_of_last(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_roundtrips_and_short_input_is_refused() {
        let t = FrameTiming {
            capture_us: 0x0102_0304_0506_0708,
            duration_us: 16_667,
            render_offset_us: 9_000,
            send_span_us: 1_200,
        };
        let mut b = [0u8; FRAME_TIMING_LEN];
        t.encode(&mut b);
        assert_eq!(FrameTiming::decode(&b), Some(t));
        assert_eq!(FrameTiming::decode(&b[..FRAME_TIMING_LEN - 1]), None);
    }

    #[test]
    fn age_splits_into_its_parts_on_one_clock() {
        let t = FrameTiming {
            capture_us: 1_000_000,
            duration_us: 16_667,
            render_offset_us: 8_000,
            send_span_us: 1_000,
        };
        // Last datagram sent at 1_009_000; last data shard at 1_009_300; parity completed it
        // 150 µs later.
        let a = Arrival {
            last_data_us: 1_009_300,
            complete_us: 1_009_450,
        };
        let s = AgeSample::new(&t, &a, 0).unwrap();
        assert_eq!(s.age_us, 9_450);
        assert_eq!(s.encode_us, 8_000);
        assert_eq!(s.host_us, 1_000);
        assert_eq!(s.network_us, 300);
        assert_eq!(s.fec_wait_us, 150);
        assert_eq!(
            s.encode_us + s.host_us + s.network_us + s.fec_wait_us,
            s.age_us
        );
    }

    #[test]
    fn clock_offset_is_applied_and_errors_clamp_at_zero() {
        let t = FrameTiming {
            capture_us: 5_000_000,
            render_offset_us: 100,
            send_span_us: 100,
            ..Default::default()
        };
        // Client clock is 4 s behind the host's.
        let a = Arrival {
            last_data_us: 1_000_500,
            complete_us: 1_000_500,
        };
        let s = AgeSample::new(&t, &a, 4_000_000).unwrap();
        assert_eq!(s.age_us, 500);
        assert_eq!(s.network_us, 300);
        // An estimate that puts arrival before sending clamps the network part to 0.
        let s = AgeSample::new(&t, &a, 3_999_000).unwrap();
        assert_eq!(s.network_us, 0);
        assert_eq!(
            AgeSample::new(&FrameTiming::default(), &a, 0),
            None,
            "no capture time, no age"
        );
    }

    #[test]
    fn window_percentiles_cover_the_interval_and_stay_bounded() {
        let mut w = AgeWindow::new();
        for i in 1..=100u64 {
            w.push(AgeSample {
                age_us: i * 10,
                ..Default::default()
            });
        }
        let s = w.take_summary();
        assert_eq!(s.frames, 100);
        assert_eq!(s.age_p50_us, 510);
        assert_eq!(s.age_p99_us, 990);
        // The next interval sees only its own frames.
        for _ in 0..10 {
            w.push(AgeSample {
                age_us: 7,
                ..Default::default()
            });
        }
        let s = w.take_summary();
        assert_eq!((s.frames, s.age_p50_us, s.age_p99_us), (10, 7, 7));
        // Many more samples than the window: memory stays at the window.
        for i in 0..(10 * AGE_WINDOW as u64) {
            w.push(AgeSample {
                age_us: i,
                ..Default::default()
            });
        }
        assert_eq!(w.samples.len(), AGE_WINDOW);
        let s = w.take_summary();
        assert_eq!(s.frames, AGE_WINDOW as u64);
        assert!(s.age_p50_us >= 9 * AGE_WINDOW as u64);
    }
}
