//! The delay signals: the one-way delay's windowed minimum, each frame's queue sample, the
//! path's jitter and the trendline of the queue (standing queue, slope and its noise).
//!
//! This part owns the delay windows of [`BandwidthEstimator`]. It only measures: it never
//! changes the estimate or the state (that is [`super::control`]), and never sees loss.

use super::rate::MAX_DELIVERIES;
use super::{BandwidthEstimator, micros};
use std::time::Duration;

/// Span of arrival time over which the minimum one-way delay is kept (as BBR's min RTT
/// window): long enough to see an empty queue between drains, short enough to follow a route
/// change and to keep clock drift between the two ends (≈ 50 ppm → 0.5 ms) negligible.
pub(crate) const MIN_DELAY_WINDOW: Duration = Duration::from_secs(2);

/// The minimum is kept in this many buckets of arrival time.
pub(crate) const MIN_DELAY_BUCKETS: usize = 10;

/// The standing queue is the minimum queue delay over this much of recent arrivals.
pub(crate) const STANDING_WINDOW: Duration = Duration::from_millis(100);

/// Frames in the trendline (delay gradient) fit.
pub(crate) const TREND_SAMPLES: usize = 20;

/// Below this standing queue the queue counts as empty.
pub(crate) const QUEUE_LOW: Duration = Duration::from_millis(2);

/// A standing queue above this is over-use whatever its trend. Above the few milliseconds a
/// flow whose frames queue behind another flow's reads from that flow's growth (see the module
/// docs, *Fairness*): the level trips for one flow alone, the gradient for both.
pub(crate) const QUEUE_HIGH: Duration = Duration::from_millis(5);

/// Queue growth (seconds of delay per second) above which a queue over [`QUEUE_LOW`] is over-use:
/// 1.2 % too fast. Low enough that a flow's additive approach to the capacity is caught by the
/// gradient before the queue reaches [`QUEUE_HIGH`].
pub(crate) const SLOPE_OVERUSE: f64 = 0.012;

/// Consecutive frames' queue samples whose differences make the path's jitter (about 1 s at
/// 60 fps).
pub(crate) const JITTER_SAMPLES: usize = 64;

/// Fewest differences the jitter is measured from.
pub(crate) const JITTER_MIN_SAMPLES: usize = 4;

/// The queue thresholds ([`QUEUE_LOW`], [`QUEUE_HIGH`]) count from this multiple of the path's
/// jitter (the median difference of consecutive frames' queue samples) up. With delay varying
/// uniformly by ±5 ms the median difference is ≈ 3 ms, and the minimum over
/// [`STANDING_WINDOW`] of such samples stays below 2 × that; a queue that stands does not
/// vary from frame to frame, so on a clean path the thresholds stay where they are.
pub(crate) const JITTER_MARGIN: f64 = 3.0;

/// A delay slope counts (for over-use, hold and draining) only when it is this many standard
/// errors of the trendline fit away from zero: noise in the queue samples makes slopes of
/// either sign that no queue is behind.
pub(crate) const SLOPE_SIGNIFICANCE: f64 = 3.0;

/// Queue shrinking (seconds of delay per second, negated) beyond which the queue is draining:
/// under-use, and no second cut in a drain.
pub(crate) const SLOPE_DRAINING: f64 = 0.02;

/// Increase stops while the smallest queue delay of this many newest frames is above
/// [`QUEUE_LOW`] and the queue grows faster than [`HOLD_SLOPE`] (a faster, noisier look
/// than the standing queue; the slope condition keeps another flow's frame bursts, which
/// come and go, from blocking our increase).
pub(crate) const RECENT_SAMPLES: usize = 2;

impl BandwidthEstimator {
    pub(super) fn on_arrival(&mut self, first_us: i64, owd_us: i64, last_us: i64, bytes: u64) {
        // Windowed minimum of the one-way delay, in per-second buckets of arrival time.
        let buckets = MIN_DELAY_BUCKETS as i64;
        let bucket = first_us.div_euclid((micros(MIN_DELAY_WINDOW) / buckets).max(1));
        match self.min_owd.back_mut() {
            Some((b, m)) if *b == bucket => *m = (*m).min(owd_us),
            Some((b, _)) if *b > bucket => {
                if let Some(e) = self.min_owd.iter_mut().find(|(b, _)| *b == bucket) {
                    e.1 = e.1.min(owd_us);
                }
            }
            _ => self.min_owd.push_back((bucket, owd_us)),
        }
        while self
            .min_owd
            .front()
            .is_some_and(|(b, _)| *b <= bucket - buckets)
        {
            self.min_owd.pop_front();
        }
        let min = self
            .min_owd
            .iter()
            .map(|(_, m)| *m)
            .min()
            .unwrap_or(owd_us)
            .min(owd_us);
        let sample = owd_us.saturating_sub(min);
        if let Some(&(_, prev)) = self.samples.back() {
            if self.jitter_diffs.len() >= JITTER_SAMPLES {
                self.jitter_diffs.pop_front();
            }
            self.jitter_diffs
                .push_back(sample.saturating_sub(prev).saturating_abs());
        }
        if self.samples.len() >= TREND_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((first_us, sample));

        if self.deliveries.len() >= MAX_DELIVERIES {
            self.deliveries.pop_front();
        }
        self.deliveries.push_back((first_us, last_us, bytes));
        self.newest_arrival_us = Some(self.newest_arrival_us.map_or(last_us, |n| n.max(last_us)));
    }

    /// The path's jitter (µs): the median difference of consecutive frames' queue samples.
    pub(super) fn jitter_us(&self) -> i64 {
        if self.jitter_diffs.len() < JITTER_MIN_SAMPLES {
            return 0;
        }
        let mut d: Vec<i64> = self.jitter_diffs.iter().copied().collect();
        let mid = d.len() / 2;
        *d.select_nth_unstable(mid).1
    }

    /// Standing queue (µs), the smallest of the newest samples (µs), the queue's slope and
    /// the slope's standard error (from the fit's residuals).
    pub(super) fn delay_signal(&self) -> (i64, i64, f64, f64) {
        let Some(&(newest, _)) = self.samples.back() else {
            return (0, 0, 0.0, 0.0);
        };
        let recent = self
            .samples
            .iter()
            .rev()
            .take(RECENT_SAMPLES)
            .map(|s| s.1)
            .min()
            .unwrap_or(0)
            .max(0);
        let from = newest.saturating_sub(micros(STANDING_WINDOW));
        let standing = self
            .samples
            .iter()
            .rev()
            .take_while(|s| s.0 >= from)
            .map(|s| s.1)
            .min()
            .unwrap_or(0)
            .max(0);
        let n = self.samples.len();
        if n < 5 {
            return (standing, recent, 0.0, 0.0);
        }
        let x0 = self.samples[0].0;
        let (mut sx, mut sy) = (0.0, 0.0);
        for s in &self.samples {
            sx += (s.0 - x0) as f64;
            sy += s.1 as f64;
        }
        let (mx, my) = (sx / n as f64, sy / n as f64);
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for s in &self.samples {
            let dx = (s.0 - x0) as f64 - mx;
            sxy += dx * (s.1 as f64 - my);
            sxx += dx * dx;
        }
        // Fewer than 20 ms of arrivals: no trend to speak of.
        if sxx <= 0.0 || (self.samples[n - 1].0 - x0) < 20_000 {
            return (standing, recent, 0.0, 0.0);
        }
        let slope = sxy / sxx;
        let mut rss = 0.0;
        for s in &self.samples {
            let r = (s.1 as f64 - my) - slope * ((s.0 - x0) as f64 - mx);
            rss += r * r;
        }
        // Slope in s/s: the samples are µs over µs.
        let stderr = (rss / (n - 2) as f64 / sxx).sqrt();
        (standing, recent, slope, stderr)
    }
}
