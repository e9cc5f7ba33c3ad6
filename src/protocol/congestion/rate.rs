//! Rates the client measured: the delivery rate (bytes that arrived over a window of arrival
//! time) and the link rate (how the bottleneck spread whole frames), with the cap the link
//! share puts on the estimate.
//!
//! This part owns the delivery and dispersion windows of [`BandwidthEstimator`]. It only
//! measures: it never changes the estimate or the state.

use super::{BandwidthEstimator, micros};
use std::time::{Duration, Instant};

/// Bounds of the delivery windows (memory only; their time spans bound them in practice).
pub(super) const MAX_DELIVERIES: usize = 256;
pub(super) const MAX_RATE_SAMPLES: usize = 256;

/// Delivery rate window (arrival time on the client).
pub(crate) const DELIVERY_WINDOW: Duration = Duration::from_millis(100);

/// A delivery rate needs at least this span of arrivals to count (a single frame's burst
/// says nothing about the path's rate over time).
pub(crate) const DELIVERY_MIN_SPAN: Duration = Duration::from_millis(20);

/// Span of arrival time over which frames' dispersion samples make the link rate (with
/// [`BweConfig::link_share`] below 1): the median of the samples from frames the bottleneck
/// spread out, unless most frames crossed as fast as they were sent (the path has room).
pub(crate) const LINK_WINDOW: Duration = Duration::from_secs(2);

/// A frame gives a dispersion sample from this many datagrams on (all of them received).
pub(crate) const LINK_MIN_DATAGRAMS: u32 = 4;

/// A frame counts as spread by the bottleneck when its datagrams arrived over at least this
/// multiple of the span they were sent over (plus [`LINK_SPREAD_SLACK`]).
pub(crate) const LINK_SPREAD: f64 = 1.25;

/// Added to the spread threshold: the receive timestamps' and the relay's jitter.
pub(crate) const LINK_SPREAD_SLACK: Duration = Duration::from_micros(300);

/// Dispersion samples kept at most (2 s at 60 fps).
pub(crate) const MAX_LINK_SAMPLES: usize = 128;

impl BandwidthEstimator {
    /// A whole frame of `datagrams` datagrams and `bytes` bytes, sent over `send_span`, arrived
    /// between `first_us` and `last_us`: the bytes after the first datagram crossed in that
    /// span. Spread well beyond the send span, that is the bottleneck's rate (the frame's
    /// datagrams queued back to back behind each other); otherwise only a lower bound.
    pub(super) fn on_dispersion(
        &mut self,
        first_us: i64,
        last_us: i64,
        bytes: u64,
        datagrams: u32,
        send_span: Duration,
    ) {
        let span = last_us.saturating_sub(first_us);
        if span <= 0 || datagrams < 2 {
            return;
        }
        let after_first = bytes as f64 * f64::from(datagrams - 1) / f64::from(datagrams);
        let spread = span as f64
            >= micros(send_span) as f64 * LINK_SPREAD + micros(LINK_SPREAD_SLACK) as f64;
        let rate = after_first * 8e6 / span.max(micros(send_span)) as f64;
        if self.link_samples.len() >= MAX_LINK_SAMPLES {
            self.link_samples.pop_front();
        }
        self.link_samples.push_back((last_us, rate, spread));
    }

    /// The path's rate from recent frames' dispersion (wire bits per second): the median of
    /// the frames the bottleneck spread in the last [`LINK_WINDOW`] of arrivals, unless at
    /// least as many crossed unspread at a higher rate (the path has room, or its rate rose).
    /// `None` when not known.
    pub(super) fn link_rate(&self) -> Option<f64> {
        // The window ends at the latest arrival, not the latest sample: when frames stop
        // giving samples (too small after a fall), the old rate expires instead of capping a
        // path that may have risen since; growth then brings frames that measure it again.
        let newest = self.newest_arrival_us?;
        let from = newest.saturating_sub(micros(LINK_WINDOW));
        let recent = self.link_samples.iter().filter(|s| s.0 >= from);
        let mut spread: Vec<f64> = recent.clone().filter(|s| s.2).map(|s| s.1).collect();
        if spread.is_empty() {
            return None;
        }
        spread.sort_unstable_by(f64::total_cmp);
        let median = spread[spread.len() / 2];
        let faster = recent.filter(|s| !s.2 && s.1 > median).count();
        (faster < spread.len()).then_some(median)
    }

    /// The cap [`BweConfig::link_share`] puts on the estimate, when below 1 and the path's
    /// rate is known.
    pub(super) fn link_cap(&self) -> Option<f64> {
        if self.cfg.link_share >= 1.0 {
            return None;
        }
        self.link_rate().map(|r| r * self.cfg.link_share)
    }

    pub(super) fn update_delivery_rate(&mut self, now: Instant) {
        let Some(newest) = self.deliveries.iter().map(|d| d.1).max() else {
            return;
        };
        let from = newest.saturating_sub(micros(DELIVERY_WINDOW));
        let (mut bytes, mut start, mut n) = (0u64, i64::MAX, 0);
        for d in self.deliveries.iter().filter(|d| d.0 >= from) {
            bytes += d.2;
            start = start.min(d.0);
            n += 1;
        }
        let span = newest.saturating_sub(start);
        if n < 2 || span < micros(DELIVERY_MIN_SPAN) {
            return;
        }
        let rate = bytes as f64 * 8e6 / span as f64;
        self.delivery_rate = Some(rate);
        if self.delivery_rates.len() >= MAX_RATE_SAMPLES {
            self.delivery_rates.pop_front();
        }
        self.delivery_rates.push_back((now, rate));
    }
}
