//! The control law: the state machine (startup, increase, hold, drain) that turns the delay,
//! loss and rate signals into the estimate, and the large-drop event.
//!
//! This part owns the estimate's changes on feedback. It never measures (the signals come from
//! [`super::delay`], [`super::loss`] and [`super::rate`]) and never reads a clock.

use super::delay::*;
use super::loss::LOSS_WINDOW;
use super::rate::MAX_RATE_SAMPLES;
use super::{BandwidthEstimator, BweEvent, BweState, DelaySignal, micros};
use std::time::{Duration, Instant};

/// Most the estimate is cut to on over-use, relative to the delivery rate.
pub(crate) const DRAIN_GAIN: f64 = 0.85;

/// A drain aims to empty the queue within about this long.
pub(crate) const DRAIN_TIME: Duration = Duration::from_millis(250);

/// Growth per response time while far from the capacity estimate.
pub(crate) const MULTIPLICATIVE_GAIN: f64 = 1.08;

/// Growth per response time near the capacity estimate, in wire bits per second.
pub(crate) const ADDITIVE_STEP_BPS: f64 = 150_000.0;

/// Between this multiple of the capacity estimate and [`NEAR_CAPACITY`] the additive step is
/// scaled by [`SLOW_STEP_FACTOR`]: the queue builds slowly where it built last time.
pub(crate) const SLOW_NEAR_CAPACITY: f64 = 0.95;

/// See [`SLOW_NEAR_CAPACITY`]. Beyond this multiple the queue did not build where it did last
/// time: the capacity has probably grown, and the step is whole again.
pub(crate) const SLOW_ABOVE_CAPACITY: f64 = 1.02;

/// See [`SLOW_NEAR_CAPACITY`].
pub(crate) const SLOW_STEP_FACTOR: f64 = 0.33;

/// See [`RECENT_SAMPLES`].
pub(crate) const HOLD_SLOPE: f64 = 0.005;

/// Below this multiple of the capacity estimate growth is additive.
pub(crate) const NEAR_CAPACITY: f64 = 1.05;

/// The estimate does not grow beyond this multiple of the highest recent delivery rate.
pub(crate) const APP_LIMITED_GAIN: f64 = 1.5;

/// A target drop of at least this fraction within [`LARGE_DROP_WINDOW`] is a large drop.
pub(crate) const LARGE_DROP: f64 = 0.4;

/// See [`LARGE_DROP`].
pub(crate) const LARGE_DROP_WINDOW: Duration = Duration::from_secs(1);

impl BandwidthEstimator {
    pub(super) fn set_state(&mut self, s: BweState, now: Instant) {
        if self.state != s {
            self.state = s;
            self.state_since = now;
        }
    }

    pub(super) fn control(&mut self, now: Instant) {
        let rt = self.response_time();
        let dt = self
            .last_update
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
            .min(rt);
        self.last_update = Some(now);
        let (q, recent, slope, stderr) = self.delay_signal();
        self.queue_us = q;
        self.slope = slope;
        // Thresholds count from the jitter floor up, and a slope counts only beyond its noise.
        let floor = (JITTER_MARGIN * self.jitter_us() as f64) as i64;
        let q_low = micros(QUEUE_LOW) + floor;
        let q_high = micros(QUEUE_HIGH) + floor;
        let noise = SLOPE_SIGNIFICANCE * stderr;
        let rising = |min: f64| slope > min && slope > noise;
        let overuse = q > q_high || (q > q_low && rising(SLOPE_OVERUSE));
        let underuse = q > q_low && slope < -SLOPE_DRAINING && -slope > noise;
        if q > q_low || overuse {
            self.last_delay_evidence = Some(now);
        }
        self.signal = if overuse {
            DelaySignal::Overuse
        } else if underuse {
            DelaySignal::Underuse
        } else {
            DelaySignal::Normal
        };
        let (loss, budget) = self.loss();
        let parity = self.parity_share();
        // Loss counts as congestion when a queue above the jitter floor stood within the loss
        // window (or a response time before it), or when it exceeds what the parity repairs.
        let delay_evidence = self
            .last_delay_evidence
            .is_some_and(|t| now.saturating_duration_since(t) <= LOSS_WINDOW + rt);
        let since_cut = self
            .last_cut
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t));

        if overuse {
            // Cut on entering over-use, and again if a response time later the queue still
            // does not shrink (the capacity kept falling, or the first cut used a stale rate).
            if self.state != BweState::Drain || (since_cut >= rt && slope > -SLOPE_DRAINING / 2.0) {
                let d = self.delivery_rate.unwrap_or(self.estimate);
                let gain = (1.0 - q as f64 / micros(DRAIN_TIME) as f64).clamp(0.5, DRAIN_GAIN);
                // Datagrams lost within the FEC budget most likely crossed the bottleneck
                // before they were lost: the capacity marker counts them, the cut does not.
                self.capacity = Some(d / (1.0 - loss.min(budget)));
                self.estimate = self.estimate.min(gain * d);
                self.last_cut = Some(now);
                self.set_state(BweState::Drain, now);
            }
        } else if self.state == BweState::Drain {
            if q < q_low {
                self.set_state(BweState::Hold, now);
            }
        } else if loss > budget && (loss > parity || delay_evidence) {
            // Loss that came with a queue (a full drop-tail queue) was answered by the drain;
            // only loss without a recent delay cut is cut for again.
            let due = self
                .last_loss_cut
                .is_none_or(|t| now.saturating_duration_since(t) >= LOSS_WINDOW)
                && since_cut >= LOSS_WINDOW + rt;
            if due {
                self.estimate *= 1.0 - 0.5 * loss;
                self.last_loss_cut = Some(now);
            }
            self.set_state(BweState::Hold, now);
        } else if (q.max(recent) >= q_low && rising(HOLD_SLOPE)) || underuse {
            self.set_state(BweState::Hold, now);
        } else if self.state == BweState::Hold
            && now.saturating_duration_since(self.state_since) < rt
        {
            // Let the path settle after a drain before probing again.
        } else {
            let app_limit = self
                .delivery_rates
                .iter()
                .map(|r| r.1)
                .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
                .map(|max| max * APP_LIMITED_GAIN);
            let frac = dt.as_secs_f64() / rt.as_secs_f64();
            let near = self
                .capacity
                .is_some_and(|c| self.estimate < c * NEAR_CAPACITY);
            let very_near = self.capacity.is_some_and(|c| {
                self.estimate > c * SLOW_NEAR_CAPACITY && self.estimate < c * SLOW_ABOVE_CAPACITY
            });
            let grown = if near {
                let step = if very_near {
                    ADDITIVE_STEP_BPS * SLOW_STEP_FACTOR
                } else {
                    ADDITIVE_STEP_BPS
                };
                self.estimate + step * frac
            } else {
                self.estimate * MULTIPLICATIVE_GAIN.powf(frac)
            };
            if app_limit.is_none_or(|l| grown <= l) {
                self.estimate = grown;
            } else if let Some(l) = app_limit {
                self.estimate = self.estimate.max(l.min(grown));
            }
            let s = if self.capacity.is_none() {
                BweState::Startup
            } else {
                BweState::Increase
            };
            self.set_state(s, now);
        }
        // The user's share of the path, in every state: leave the rest of each frame
        // interval free.
        if let Some(cap) = self.link_cap() {
            self.estimate = self.estimate.min(cap);
        }
        self.after_change(now);
    }

    pub(super) fn after_change(&mut self, now: Instant) {
        let (lo, hi) = self.bounds();
        self.estimate = self.estimate.clamp(lo, hi);
        let target = self.estimate().target_bitrate_bps;
        while self
            .recent_targets
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > LARGE_DROP_WINDOW)
        {
            self.recent_targets.pop_front();
        }
        // The target that stood until now counts as of now, so a drop is measured from it
        // however long it stood.
        for t in [self.last_target, target] {
            if self.recent_targets.len() >= MAX_RATE_SAMPLES {
                self.recent_targets.pop_front();
            }
            self.recent_targets.push_back((now, t));
        }
        self.last_target = target;
        let reference = self
            .recent_targets
            .iter()
            .map(|t| t.1)
            .max()
            .unwrap_or(target);
        let dropped = (target as f64) <= (1.0 - LARGE_DROP) * reference as f64;
        if dropped && !self.drop_active {
            self.events.push_back(BweEvent::LargeDrop {
                from_bps: reference,
                to_bps: target,
                frames_lost: self.lost_frames.len() as u64,
            });
        }
        self.drop_active = dropped;
    }
}
