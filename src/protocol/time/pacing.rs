//! Send pacing: when each datagram of a frame may leave.
//!
//! An unpaced frame leaves at line rate in one burst, overruns socket buffers, NIC queues and
//! switch buffers, and loses whole frames at 1 Gbps and up. The [`Pacer`] plans each frame as a
//! small immediate burst followed by chunks released at a steady rate well above the stream's
//! bitrate, so a frame still finishes within a part of the frame interval (latency stays low)
//! while the queues along the path never see more than a burst at once.
//!
//! This module owns the rate estimate (bitrate over the last second, frame interval) and the
//! release plan ([`Schedule`]). It never reads a clock, sleeps or sends: the caller passes
//! `now`, and waits for the instants the plan gives.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

/// Frame interval assumed before two frames were seen: 60 frames per second.
pub(crate) const DEFAULT_FRAME_INTERVAL: Duration = Duration::from_nanos(1_000_000_000 / 60);

/// Span of history the bitrate estimate covers.
pub(crate) const BITRATE_WINDOW: Duration = Duration::from_secs(1);

/// Inter-frame gaps are clamped into this range before they enter the interval estimate: a
/// pause (a static desktop sends no frames) must not stretch the spread of the next frame over
/// hundreds of milliseconds, and two frames in the same instant say nothing about the rate.
const MIN_FRAME_GAP: Duration = Duration::from_micros(250);
const MAX_FRAME_GAP: Duration = Duration::from_millis(100);

/// Weight of a new gap in the frame interval EWMA (1/8, as TCP's SRTT).
const INTERVAL_GAIN: f64 = 0.125;

/// Most frames remembered for the bitrate estimate; far above any real frame rate over one
/// second, it only bounds memory if a caller observes frames in a tight loop.
const MAX_WINDOW_FRAMES: usize = 4096;

/// Datagrams per chunk (and in the first burst) while congestion control sets the rate
/// ([`Pacer::set_congestion_rate_bps`]): a frame is spread evenly, so at a bottleneck it never
/// stands as one burst in front of another flow's frame.
pub(crate) const CONGESTION_CHUNK_DATAGRAMS: usize = 2;

/// The longest release offset a plan contains. Only reachable with an absurdly low explicit
/// rate; it keeps the instant arithmetic from overflowing.
const MAX_OFFSET: Duration = Duration::from_secs(60);

/// How the pacer spreads frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacingConfig {
    /// Sending rate after the burst, in bits per second; 0 = automatic (see [`Pacer`]).
    pub rate_bps: u64,
    /// Datagrams released at once at the start of a frame.
    pub burst_datagrams: usize,
    /// Datagrams released together after the burst (0 is taken as 1).
    pub chunk_datagrams: usize,
    /// A frame's datagrams are spread over at most this part of the frame interval (automatic
    /// rate only). Values outside (0, 1] or not finite are taken as the default.
    pub spread_fraction: f64,
    /// The automatic rate never goes below this many bits per second.
    pub min_auto_rate_bps: u64,
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            rate_bps: 0,
            burst_datagrams: 32,
            chunk_datagrams: 16,
            spread_fraction: 0.5,
            min_auto_rate_bps: 200_000_000,
        }
    }
}

impl PacingConfig {
    fn spread(&self) -> f64 {
        if self.spread_fraction.is_finite()
            && self.spread_fraction > 0.0
            && self.spread_fraction <= 1.0
        {
            self.spread_fraction
        } else {
            PacingConfig::default().spread_fraction
        }
    }
}

/// Plans frame releases from a running estimate of the stream's bitrate and frame interval.
///
/// The effective rate is `rate_bps` when set; automatic, it is the largest of
/// `min_auto_rate_bps`, 8 × the measured bitrate, and the rate that sends this frame within
/// `spread_fraction` of the frame interval.
#[derive(Debug, Clone)]
pub struct Pacer {
    cfg: PacingConfig,
    /// Frames seen in the last [`BITRATE_WINDOW`]: when and how many bytes.
    window: VecDeque<(Instant, usize)>,
    window_bytes: u64,
    first_frame: Option<Instant>,
    last_frame: Option<Instant>,
    /// EWMA of inter-frame gaps, in seconds; `None` until two frames were seen.
    interval_s: Option<f64>,
    bitrate_bps: u64,
    /// Congestion control's rate (0 = none); overrides `cfg.rate_bps` and the burst and chunk
    /// sizes while set.
    congestion_rate_bps: u64,
}

impl Pacer {
    /// A pacer with the given configuration.
    pub fn new(cfg: PacingConfig) -> Self {
        Pacer {
            cfg,
            window: VecDeque::new(),
            window_bytes: 0,
            first_frame: None,
            last_frame: None,
            interval_s: None,
            bitrate_bps: 0,
            congestion_rate_bps: 0,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &PacingConfig {
        &self.cfg
    }

    /// Congestion control's pacing rate (bits per second; 0 = none, back to the configured
    /// pacing) from the next frame on: frames are spread at this rate in chunks of
    /// [`CONGESTION_CHUNK_DATAGRAMS`].
    pub(crate) fn set_congestion_rate_bps(&mut self, rate_bps: u64) {
        self.congestion_rate_bps = rate_bps;
    }

    /// Records a frame of `bytes` (its size on the wire) sent at `now`.
    pub(crate) fn observe_frame(&mut self, bytes: usize, now: Instant) {
        while let Some(&(at, b)) = self.window.front() {
            if now.saturating_duration_since(at) >= BITRATE_WINDOW
                || self.window.len() >= MAX_WINDOW_FRAMES
            {
                self.window.pop_front();
                self.window_bytes = self.window_bytes.saturating_sub(b as u64);
            } else {
                break;
            }
        }
        self.window.push_back((now, bytes));
        self.window_bytes = self.window_bytes.saturating_add(bytes as u64);

        if let Some(last) = self.last_frame {
            let gap = now.saturating_duration_since(last);
            if !gap.is_zero() {
                let gap = gap.clamp(MIN_FRAME_GAP, MAX_FRAME_GAP).as_secs_f64();
                self.interval_s = Some(match self.interval_s {
                    None => gap,
                    Some(avg) => avg + INTERVAL_GAIN * (gap - avg),
                });
            }
        }
        self.last_frame = Some(self.last_frame.map_or(now, |t| t.max(now)));
        let first = *self.first_frame.get_or_insert(now);

        // n frames observed over a span of (n-1) intervals stand for n intervals of stream;
        // past the first second the window is exactly one second long.
        let span = now.saturating_duration_since(first).as_secs_f64() + self.interval_secs();
        let span = span.min(BITRATE_WINDOW.as_secs_f64());
        self.bitrate_bps = (self.window_bytes as f64 * 8.0 / span) as u64;
    }

    fn interval_secs(&self) -> f64 {
        self.interval_s
            .unwrap_or(DEFAULT_FRAME_INTERVAL.as_secs_f64())
    }

    /// The frame interval estimate ([`DEFAULT_FRAME_INTERVAL`] until two frames were seen).
    pub(crate) fn frame_interval(&self) -> Duration {
        Duration::from_secs_f64(self.interval_secs())
    }

    /// The stream's bitrate over about the last second, in bits per second.
    pub fn measured_bitrate_bps(&self) -> u64 {
        self.bitrate_bps
    }

    /// The rate a frame of `frame_bytes` would be paced at, in bits per second (never 0).
    pub(crate) fn effective_rate_bps(&self, frame_bytes: usize) -> u64 {
        let explicit = if self.congestion_rate_bps > 0 {
            self.congestion_rate_bps
        } else {
            self.cfg.rate_bps
        };
        if explicit > 0 {
            // An explicit rate is honoured unless it would keep the sender busy past the next
            // frame: the streaming thread must never block beyond one frame interval.
            let to_fit_interval = (frame_bytes as f64 * 8.0 / self.interval_secs()).ceil() as u64;
            return explicit.max(to_fit_interval);
        }
        let window_s = self.cfg.spread() * self.interval_secs();
        // Float to int casts saturate; the ceil keeps the frame inside its window.
        let to_fit = (frame_bytes as f64 * 8.0 / window_s).ceil() as u64;
        self.cfg
            .min_auto_rate_bps
            .max(self.bitrate_bps.saturating_mul(8))
            .max(to_fit)
            .max(1)
    }

    /// Plans the release of one frame of `datagram_count` datagrams totalling
    /// `datagram_sizes_total_bytes`, starting at `now`.
    pub fn schedule(
        &mut self,
        datagram_sizes_total_bytes: usize,
        datagram_count: usize,
        now: Instant,
    ) -> Schedule {
        let rate_bps = self.effective_rate_bps(datagram_sizes_total_bytes);
        let (burst, chunk) = if self.congestion_rate_bps > 0 {
            (CONGESTION_CHUNK_DATAGRAMS, CONGESTION_CHUNK_DATAGRAMS)
        } else {
            (self.cfg.burst_datagrams, self.cfg.chunk_datagrams)
        };
        Schedule {
            start: now,
            count: datagram_count,
            burst: burst.min(datagram_count),
            chunk: chunk.max(1),
            total_bytes: datagram_sizes_total_bytes as u64,
            rate_bps,
        }
    }
}

/// The release plan of one frame: datagrams `0..burst` at `start`, then chunks of `chunk`
/// datagrams, each released when the datagrams before it would have left at `rate_bps`
/// (taking every datagram as the frame's average size). A small `Copy` value; iterate it for
/// `(datagram range, release instant)` pairs without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    start: Instant,
    count: usize,
    burst: usize,
    chunk: usize,
    total_bytes: u64,
    rate_bps: u64,
}

impl Schedule {
    /// Time for the first `index` datagrams to leave at the plan's rate. Monotone in `index`
    /// because, for a given plan, it is always the same integer division of a product
    /// increasing in `index`.
    fn offset(&self, index: usize) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rate = self.rate_bps.max(1) as u128;
        let bit_ns = self.total_bytes as u128 * 8 * 1_000_000_000;
        let ns = if bit_ns.checked_mul(self.count as u128).is_some() {
            // Exact: bytes before `index` (at the average size) × 8 / rate.
            bit_ns * index as u128 / (self.count as u128 * rate)
        } else {
            // Only for absurd sizes: clamp the whole spread first so the product fits.
            let full = (bit_ns / rate).min(MAX_OFFSET.as_nanos());
            full * index as u128 / self.count as u128
        };
        if ns >= MAX_OFFSET.as_nanos() {
            MAX_OFFSET
        } else {
            Duration::from_nanos(ns as u64)
        }
    }

    fn at(&self, offset: Duration) -> Instant {
        self.start.checked_add(offset).unwrap_or(self.start)
    }

    /// When the frame starts (the burst's release).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// When the frame has left at the plan's rate: `start + bytes × 8 / rate`.
    pub fn end(&self) -> Instant {
        self.at(self.offset(self.count))
    }

    /// The rate after the burst, in bits per second.
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    /// Datagrams in the frame.
    pub fn datagram_count(&self) -> usize {
        self.count
    }

    /// Datagrams released at `start`.
    pub fn burst(&self) -> usize {
        self.burst
    }

    /// When datagram `index` may be sent (`end()` for an index past the frame).
    pub fn release_of(&self, index: usize) -> Instant {
        if index >= self.count {
            return self.end();
        }
        if index < self.burst {
            return self.start;
        }
        let chunk_start = self.burst + (index - self.burst) / self.chunk * self.chunk;
        self.at(self.offset(chunk_start))
    }

    /// The release plan, chunk by chunk.
    pub fn chunks(&self) -> ScheduleChunks {
        ScheduleChunks {
            schedule: *self,
            next: 0,
        }
    }
}

impl IntoIterator for Schedule {
    type Item = (Range<usize>, Instant);
    type IntoIter = ScheduleChunks;

    fn into_iter(self) -> ScheduleChunks {
        self.chunks()
    }
}

/// Iterator over a [`Schedule`]'s chunks: `(datagram indices, release instant)`, in order.
#[derive(Debug, Clone)]
pub struct ScheduleChunks {
    schedule: Schedule,
    next: usize,
}

impl Iterator for ScheduleChunks {
    type Item = (Range<usize>, Instant);

    fn next(&mut self) -> Option<Self::Item> {
        let s = &self.schedule;
        if self.next >= s.count {
            return None;
        }
        let len = if self.next < s.burst {
            s.burst - self.next
        } else {
            s.chunk
        };
        let first = self.next;
        let end = first.saturating_add(len).min(s.count);
        self.next = end;
        let at = if first < s.burst {
            s.start
        } else {
            s.at(s.offset(first))
        };
        Some((first..end, at))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let s = &self.schedule;
        let mut left = 0;
        let mut from = self.next;
        if from < s.burst {
            left += 1;
            from = s.burst;
        }
        if from < s.count {
            left += (s.count - from).div_ceil(s.chunk);
        }
        (left, Some(left))
    }
}

impl ExactSizeIterator for ScheduleChunks {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nanos(d: Duration) -> u128 {
        d.as_nanos()
    }

    #[test]
    fn defaults() {
        let c = PacingConfig::default();
        assert_eq!(c.rate_bps, 0);
        assert_eq!(c.burst_datagrams, 32);
        assert_eq!(c.chunk_datagrams, 16);
        assert_eq!(c.spread_fraction, 0.5);
        assert_eq!(c.min_auto_rate_bps, 200_000_000);
        let p = Pacer::new(c);
        assert_eq!(p.frame_interval(), DEFAULT_FRAME_INTERVAL);
        assert_eq!(p.measured_bitrate_bps(), 0);
    }

    #[test]
    fn burst_first_then_chunks() {
        let now = Instant::now();
        let mut p = Pacer::new(PacingConfig {
            rate_bps: 1_000_000_000,
            ..Default::default()
        });
        let s = p.schedule(100 * 1400, 100, now);
        let chunks: Vec<_> = s.chunks().collect();
        assert_eq!(s.chunks().len(), chunks.len());
        assert_eq!(chunks[0], (0..32, now));
        let ranges: Vec<_> = chunks.iter().map(|(r, _)| r.clone()).collect();
        assert_eq!(ranges, [0..32, 32..48, 48..64, 64..80, 80..96, 96..100]);
        for (i, (r, at)) in chunks.iter().enumerate().skip(1) {
            // Released when the bytes before it have left at 1 Gbps: 1400 B = 11.2 µs each.
            let expect = Duration::from_nanos(r.start as u64 * 11_200);
            assert_eq!(*at - now, expect, "chunk {i}");
            assert_eq!(s.release_of(r.start), *at);
            assert_eq!(s.release_of(r.end - 1), *at);
        }
        assert_eq!(s.release_of(0), now);
        assert_eq!(s.release_of(31), now);
    }

    #[test]
    fn release_times_are_monotone_and_cover_every_datagram_once() {
        let now = Instant::now();
        let mut p = Pacer::new(PacingConfig::default());
        let s = p.schedule(1_234_567, 917, now);
        let mut next = 0;
        let mut last = now;
        for (r, at) in s {
            assert_eq!(r.start, next);
            assert!(r.end > r.start);
            assert!(at >= last);
            assert!(at <= s.end());
            last = at;
            next = r.end;
        }
        assert_eq!(next, 917);
    }

    #[test]
    fn total_spread_is_bytes_over_rate() {
        let now = Instant::now();
        // Rates at which a 420 kB frame fits one frame interval (an explicit rate is raised
        // only when it would not).
        for rate in [250_000_000u64, 1_000_000_000, 10_000_000_000] {
            let mut p = Pacer::new(PacingConfig {
                rate_bps: rate,
                ..Default::default()
            });
            let bytes = 300 * 1400;
            let s = p.schedule(bytes, 300, now);
            let expect = bytes as u128 * 8 * 1_000_000_000 / rate as u128;
            assert_eq!(nanos(s.end() - now), expect);
            assert_eq!(s.rate_bps(), rate);
        }
    }

    #[test]
    fn sending_rate_after_the_burst_equals_the_rate() {
        let now = Instant::now();
        let rate = 2_000_000_000u64;
        let mut p = Pacer::new(PacingConfig {
            rate_bps: rate,
            ..Default::default()
        });
        let s = p.schedule(200 * 1000, 200, now);
        let chunks: Vec<_> = s.chunks().collect();
        for w in chunks.windows(2).skip(1) {
            // Between chunk starts: 16 datagrams × 1000 B × 8 / 2 Gbps = 64 µs.
            assert_eq!(w[1].1 - w[0].1, Duration::from_micros(64));
        }
        // The last chunk has left at the rate exactly at end().
        let (last, at) = chunks.last().cloned().unwrap();
        let bits = (last.end - last.start) as u64 * 1000 * 8;
        assert_eq!(
            s.end() - at,
            Duration::from_nanos(bits * 1_000_000_000 / rate)
        );
    }

    #[test]
    fn explicit_rate_is_respected_even_below_the_auto_floor_and_the_spread() {
        let now = Instant::now();
        let mut p = Pacer::new(PacingConfig {
            rate_bps: 100_000_000,
            ..Default::default()
        });
        for i in 0..120 {
            p.observe_frame(500_000, now + DEFAULT_FRAME_INTERVAL * i);
        }
        // 100 kB at 100 Mbit/s takes 8 ms: beyond the spread (half of 16.7 ms), within the
        // interval, so the explicit rate stands.
        assert_eq!(p.effective_rate_bps(100_000), 100_000_000);
        let s = p.schedule(100_000, 100, now);
        assert_eq!(s.rate_bps(), 100_000_000);
        assert_eq!(s.end() - now, Duration::from_millis(8));
    }

    #[test]
    fn congestion_rate_spreads_the_frame_in_small_chunks_until_cleared() {
        let now = Instant::now();
        let mut p = Pacer::new(PacingConfig::default());
        // 20 datagrams of 1,250 bytes: one burst under the automatic pacing.
        let auto = p.schedule(25_000, 20, now);
        assert_eq!(auto.burst(), 20);
        assert_eq!(auto.end(), now + Duration::from_micros(1_000));
        // At 15 Mbit/s in chunks: 25 kB leave over 13.3 ms, two datagrams at a time.
        p.set_congestion_rate_bps(15_000_000);
        let s = p.schedule(25_000, 20, now);
        assert_eq!(s.rate_bps(), 15_000_000);
        assert_eq!(s.burst(), CONGESTION_CHUNK_DATAGRAMS);
        let chunks: Vec<_> = s.chunks().collect();
        assert_eq!(chunks.len(), 20 / CONGESTION_CHUNK_DATAGRAMS);
        assert!(
            chunks
                .iter()
                .all(|(r, _)| r.len() == CONGESTION_CHUNK_DATAGRAMS)
        );
        assert_eq!(s.end() - now, Duration::from_nanos(13_333_333));
        assert!(chunks[9].1 - now > Duration::from_millis(11));
        // Cleared: back to the configured pacing.
        p.set_congestion_rate_bps(0);
        assert_eq!(p.schedule(25_000, 20, now), auto);
    }

    #[test]
    fn explicit_rate_never_spreads_a_frame_beyond_its_interval() {
        let now = Instant::now();
        let mut p = Pacer::new(PacingConfig {
            rate_bps: 10_000_000,
            ..Default::default()
        });
        for i in 0..120 {
            p.observe_frame(100_000, now + DEFAULT_FRAME_INTERVAL * i);
        }
        // 300 kB at 10 Mbit/s would take 240 ms; it is raised to fit one frame interval.
        let s = p.schedule(300_000, 220, now);
        assert!(s.rate_bps() > 10_000_000);
        assert!(s.end() - now <= p.frame_interval() + Duration::from_micros(1));
        // A small frame keeps the explicit rate.
        assert_eq!(p.effective_rate_bps(10_000), 10_000_000);
    }

    #[test]
    fn auto_rate_never_below_the_floor() {
        let now = Instant::now();
        let mut p = Pacer::new(PacingConfig::default());
        assert_eq!(p.effective_rate_bps(0), 200_000_000);
        assert_eq!(p.effective_rate_bps(1400), 200_000_000);
        for i in 0..200 {
            p.observe_frame(1000, now + DEFAULT_FRAME_INTERVAL * i);
        }
        assert!(p.measured_bitrate_bps() < 1_000_000);
        assert_eq!(p.schedule(1000, 1, now).rate_bps(), 200_000_000);
        // A zero floor and an empty frame still give a usable rate.
        let p = Pacer::new(PacingConfig {
            min_auto_rate_bps: 0,
            ..Default::default()
        });
        assert_eq!(p.effective_rate_bps(0), 1);
    }

    #[test]
    fn auto_rate_is_at_least_eight_times_the_bitrate() {
        let now = Instant::now();
        let mut p = Pacer::new(PacingConfig::default());
        // 60 fps × 125 kB = 60 Mbit/s.
        for i in 0..180 {
            p.observe_frame(125_000, now + DEFAULT_FRAME_INTERVAL * i);
        }
        let measured = p.measured_bitrate_bps();
        assert!(
            (59_000_000..=61_000_000).contains(&measured),
            "measured {measured}"
        );
        assert_eq!(p.effective_rate_bps(1400), measured * 8);
    }

    #[test]
    fn bitrate_estimate_is_right_from_the_start_and_forgets_after_a_second() {
        let t0 = Instant::now();
        let mut p = Pacer::new(PacingConfig::default());
        p.observe_frame(100_000, t0);
        // One frame of 100 kB at the default 60 fps reads as 48 Mbit/s.
        let m = p.measured_bitrate_bps();
        assert!(m.abs_diff(48_000_000) <= 1, "{m}");
        for i in 1..10 {
            p.observe_frame(100_000, t0 + DEFAULT_FRAME_INTERVAL * i);
        }
        let m = p.measured_bitrate_bps();
        assert!((47_000_000..=49_000_000).contains(&m), "{m}");
        // After a long pause only the new frame counts.
        let later = t0 + Duration::from_secs(5);
        p.observe_frame(1_000, later);
        assert_eq!(p.window.len(), 1);
        assert!(p.measured_bitrate_bps() < 1_000_000);
    }

    #[test]
    fn frame_interval_tracks_the_frame_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(PacingConfig::default());
        p.observe_frame(1000, t0);
        assert_eq!(p.frame_interval(), DEFAULT_FRAME_INTERVAL);
        let gap = Duration::from_nanos(1_000_000_000 / 30);
        for i in 1..100 {
            p.observe_frame(1000, t0 + gap * i);
        }
        let iv = p.frame_interval().as_secs_f64();
        assert!((iv - 1.0 / 30.0).abs() < 1e-6, "{iv}");
        // Duplicate or backwards timestamps do not disturb it.
        p.observe_frame(1000, t0 + gap * 99);
        p.observe_frame(1000, t0);
        assert!((p.frame_interval().as_secs_f64() - 1.0 / 30.0).abs() < 1e-6);
        // A long pause is clamped.
        p.observe_frame(1000, t0 + Duration::from_secs(100));
        assert!(p.frame_interval() < Duration::from_millis(50));
    }

    #[test]
    fn big_keyframe_at_low_bitrate_finishes_within_the_spread() {
        let t0 = Instant::now();
        let mut p = Pacer::new(PacingConfig::default());
        // 2 Mbit/s stream at 60 fps, then a 3 MB keyframe.
        for i in 0..120 {
            p.observe_frame(4_000, t0 + DEFAULT_FRAME_INTERVAL * i);
        }
        let now = t0 + DEFAULT_FRAME_INTERVAL * 120;
        let bytes = 3_000_000;
        let s = p.schedule(bytes, bytes / 1400 + 1, now);
        let limit = p.frame_interval().mul_f64(0.5);
        assert!(s.end() - now <= limit, "{:?} > {:?}", s.end() - now, limit);
        // And it is not sent faster than needed: it uses most of the window.
        assert!(s.end() - now >= limit.mul_f64(0.99));
        assert!(s.rate_bps() > 200_000_000);
    }

    #[test]
    fn degenerate_plans() {
        let now = Instant::now();
        let mut p = Pacer::new(PacingConfig::default());
        let s = p.schedule(0, 0, now);
        assert_eq!(s.chunks().count(), 0);
        assert_eq!(s.end(), now);
        let s = p.schedule(0, 50, now);
        assert!(s.chunks().all(|(_, at)| at == now));
        let s = p.schedule(14_000, 10, now);
        assert_eq!(s.chunks().collect::<Vec<_>>(), [(0..10, now)]);
        assert_eq!(s.release_of(10), s.end());

        let mut p = Pacer::new(PacingConfig {
            burst_datagrams: 0,
            chunk_datagrams: 0,
            spread_fraction: f64::NAN,
            rate_bps: 8_000_000,
            ..Default::default()
        });
        let s = p.schedule(10_000, 10, now);
        let chunks: Vec<_> = s.chunks().collect();
        assert_eq!(chunks.len(), 10);
        assert_eq!(chunks[0], (0..1, now));
        assert_eq!(chunks[9].1 - now, Duration::from_millis(9));
        assert_eq!(s.end() - now, Duration::from_millis(10));

        // An absurd plan stays finite (the rate is raised to fit the frame interval, and the
        // offset is capped).
        let mut p = Pacer::new(PacingConfig {
            rate_bps: 1,
            ..Default::default()
        });
        let s = p.schedule(usize::MAX, usize::MAX, now);
        assert!(s.end() - now <= MAX_OFFSET);
        assert_eq!(s.chunks().next(), Some((0..32, now)));
    }

    #[test]
    fn bad_spread_fraction_falls_back_to_default() {
        for bad in [0.0, -1.0, 2.0, f64::INFINITY] {
            let p = Pacer::new(PacingConfig {
                spread_fraction: bad,
                min_auto_rate_bps: 0,
                ..Default::default()
            });
            let good = Pacer::new(PacingConfig {
                min_auto_rate_bps: 0,
                ..Default::default()
            });
            assert_eq!(
                p.effective_rate_bps(1_000_000),
                good.effective_rate_bps(1_000_000)
            );
        }
    }

    proptest! {
        #[test]
        fn prop_plans_are_sound(
            bytes in 0usize..50_000_000,
            count in 0usize..40_000,
            rate in 0u64..100_000_000_000,
            burst in 0usize..100,
            chunk in 0usize..100,
            spread in -1.0f64..2.0,
            floor in 0u64..1_000_000_000,
            frames in proptest::collection::vec((0usize..2_000_000, 0u64..200_000_000), 0..50),
        ) {
            let t0 = Instant::now();
            let mut p = Pacer::new(PacingConfig {
                rate_bps: rate,
                burst_datagrams: burst,
                chunk_datagrams: chunk,
                spread_fraction: spread,
                min_auto_rate_bps: floor,
            });
            let mut t = t0;
            for (b, gap_ns) in frames {
                t += Duration::from_nanos(gap_ns);
                p.observe_frame(b, t);
            }
            let s = p.schedule(bytes, count, t);
            prop_assert!(s.rate_bps() > 0);
            if rate > 0 {
                prop_assert!(s.rate_bps() >= rate);
                // Raised only when needed to fit the frame into one frame interval.
                let fit = (bytes as f64 * 8.0 / p.frame_interval().as_secs_f64()).ceil() as u64;
                if fit < rate / 2 {
                    prop_assert_eq!(s.rate_bps(), rate);
                }
                prop_assert!((s.end() - t).as_secs_f64() <= p.frame_interval().as_secs_f64() + 1e-8);
            } else {
                prop_assert!(s.rate_bps() >= floor);
                // The frame fits its share of the interval.
                let limit = p.frame_interval().as_secs_f64() * p.config().spread();
                prop_assert!((s.end() - t).as_secs_f64() <= limit + 1e-8);
            }
            let mut next = 0;
            let mut last = t;
            let mut n = 0;
            let expect = s.chunks().len();
            for (r, at) in s.chunks() {
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start);
                prop_assert!(at >= last && at <= s.end());
                if r.start < burst {
                    prop_assert_eq!(at, t);
                }
                for i in [r.start, r.end - 1] {
                    prop_assert_eq!(s.release_of(i), at);
                }
                last = at;
                next = r.end;
                n += 1;
            }
            prop_assert_eq!(next, count);
            prop_assert_eq!(n, expect);
            let spread_ns = (bytes as u128 * 8 * 1_000_000_000 / s.rate_bps() as u128)
                .min(MAX_OFFSET.as_nanos());
            prop_assert_eq!((s.end() - t).as_nanos(), if count == 0 { 0 } else { spread_ns });
        }
    }
}
