//! The host's clock as seen by the client: an offset estimated from ping/pong exchanges, the
//! four timestamps of NTP.
//!
//! Frames carry the host's capture time in the host's clock (microseconds of its monotonic
//! clock). To say how old a frame is when it arrives, the client needs `host − local`. Each
//! ping/pong gives one sample: the client sends at `t1` (local), the host receives at `t2` and
//! answers at `t3` (host clock), the client receives at `t4` (local). Then
//! `offset = ((t2 − t1) + (t3 − t4)) / 2` and the sample's error is at most `rtt / 2` with
//! `rtt = (t4 − t1) − (t3 − t2)`. The estimator keeps the sample with the smallest RTT over a
//! sliding window (queueing only ever adds delay, so the fastest exchange is the most
//! symmetric), as NTP's clock filter does.
//!
//! Sans-IO: every method takes the timestamps it needs; nothing here reads a clock. Two ends on
//! one machine that use the same monotonic clock measure an offset of (nearly) zero, so frame
//! ages there are exact to within the loopback RTT's asymmetry (microseconds).

use std::collections::VecDeque;

/// Samples kept; the best (smallest RTT) of them is the estimate.
const WINDOW: usize = 32;
/// A sample older than this (in local µs) no longer counts: clocks drift (~tens of ppm), so a
/// minute-old fast exchange can be worse than a fresh slower one.
const MAX_AGE_US: u64 = 60_000_000;

/// One exchange, reduced to what the filter needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    /// When it was taken (local µs, `t4`).
    at_us: u64,
    rtt_us: u64,
    /// host − local, µs.
    offset_us: i64,
}

/// Estimates the host clock minus the local clock (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct ClockOffset {
    samples: VecDeque<Sample>,
}

impl ClockOffset {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds one exchange: `t1`/`t4` local send/receive, `t2`/`t3` remote receive/send, all µs.
    /// Implausible samples (negative round trip, remote time going backwards) are ignored and
    /// `false` is returned.
    pub(crate) fn on_exchange(&mut self, t1: u64, t2: u64, t3: u64, t4: u64) -> bool {
        if t4 < t1 || t3 < t2 {
            return false;
        }
        let local_span = t4 - t1;
        let remote_span = t3 - t2;
        if remote_span > local_span {
            return false;
        }
        let rtt_us = local_span - remote_span;
        // Computed in i128 so no pair of u64 clocks can overflow.
        let offset = ((t2 as i128 - t1 as i128) + (t3 as i128 - t4 as i128)) / 2;
        let Ok(offset_us) = i64::try_from(offset) else {
            return false;
        };
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            at_us: t4,
            rtt_us,
            offset_us,
        });
        true
    }

    fn best(&self) -> Option<&Sample> {
        let newest = self.samples.back()?.at_us;
        self.samples
            .iter()
            .filter(|s| newest.saturating_sub(s.at_us) <= MAX_AGE_US)
            .min_by_key(|s| s.rtt_us)
    }

    /// host − local in µs, once at least one exchange was seen.
    pub(crate) fn offset_us(&self) -> Option<i64> {
        self.best().map(|s| s.offset_us)
    }

    /// The bound on the estimate's error (half the best sample's RTT), µs.
    pub(crate) fn uncertainty_us(&self) -> Option<u64> {
        self.best().map(|s| s.rtt_us / 2)
    }

    /// Converts a local time (µs) into the host's clock, when an offset is known.
    #[cfg(test)]
    pub(crate) fn to_host(&self, local_us: u64) -> Option<u64> {
        let o = self.offset_us()?;
        u64::try_from(local_us as i128 + o as i128).ok()
    }

    /// Forgets every sample (a new session may be a new host).
    pub(crate) fn reset(&mut self) {
        self.samples.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates an exchange with a host whose clock is `local + offset`, one-way delays `up`
    /// and `down`, and `hold` µs spent at the host.
    fn exchange(c: &mut ClockOffset, t1: u64, offset: i64, up: u64, down: u64, hold: u64) {
        let t2 = (t1 as i64 + up as i64 + offset) as u64;
        let t3 = t2 + hold;
        let t4 = t1 + up + hold + down;
        assert!(c.on_exchange(t1, t2, t3, t4));
    }

    #[test]
    fn symmetric_path_gives_the_exact_offset() {
        for offset in [-5_000_000_i64, 0, 123, 7_000_000_000] {
            let mut c = ClockOffset::new();
            exchange(&mut c, 10_000_000, offset, 300, 300, 40);
            assert_eq!(c.offset_us(), Some(offset));
            assert_eq!(c.uncertainty_us(), Some(300));
        }
    }

    #[test]
    fn asymmetry_error_is_bounded_by_half_the_rtt() {
        let mut c = ClockOffset::new();
        exchange(&mut c, 1_000_000, 42_000, 900, 100, 0);
        let err = (c.offset_us().unwrap() - 42_000).unsigned_abs();
        assert!(err <= c.uncertainty_us().unwrap(), "error {err}");
        assert_eq!(err, 400);
    }

    #[test]
    fn the_fastest_exchange_wins_over_queued_ones() {
        let mut c = ClockOffset::new();
        let offset = 1_000_000;
        // Queueing on the way up skews every slow sample; one clean exchange fixes it.
        for i in 0..10 {
            exchange(
                &mut c,
                1_000_000 + i * 250_000,
                offset,
                5_000 + i * 100,
                200,
                10,
            );
        }
        exchange(&mut c, 4_000_000, offset, 200, 200, 10);
        for i in 0..5 {
            exchange(&mut c, 4_250_000 + i * 250_000, offset, 8_000, 200, 10);
        }
        assert_eq!(c.offset_us(), Some(offset));
    }

    #[test]
    fn old_samples_expire() {
        let mut c = ClockOffset::new();
        exchange(&mut c, 1_000_000, 500, 10, 10, 0);
        // Much later, the clock drifted by 20 µs and only slower samples exist.
        exchange(&mut c, 1_000_000 + MAX_AGE_US + 1_000, 520, 100, 100, 0);
        assert_eq!(c.offset_us(), Some(520));
    }

    #[test]
    fn implausible_samples_are_ignored() {
        let mut c = ClockOffset::new();
        assert!(!c.on_exchange(100, 0, 0, 50)); // received before sent
        assert!(!c.on_exchange(0, 100, 50, 10)); // remote clock went backwards
        assert!(!c.on_exchange(0, 0, 100, 10)); // held longer than the round trip
        // An offset beyond i64 cannot be represented: ignored, not wrapped.
        assert!(!c.on_exchange(u64::MAX - 10, 0, 0, u64::MAX));
        assert_eq!(c.offset_us(), None);
        // A host clock behind ours: local times before the offset have no host time.
        assert!(c.on_exchange(1_000, 10, 10, 1_000));
        assert_eq!(c.offset_us(), Some(-990));
        assert_eq!(c.to_host(0), None);
        assert_eq!(c.to_host(2_000), Some(1_010));
        c.reset();
        assert_eq!(c.offset_us(), None);
    }
}
