//! Frame timing in the connection: the host clock (instants ↔ microseconds of the host's
//! monotonic clock), the [`FrameTiming`] the host writes into every frame, the NTP-style
//! ping/pong that estimates the client's clock offset, and the client's window of frame ages.
//!
//! The host clock: every `Instant` the connection is given is mapped through one anchor pair
//! `(Instant, µs)` that the driver sets once with [`Connection::set_host_clock`] (it samples
//! `Instant::now()` and `CLOCK_MONOTONIC` together). Without an anchor, the connection's
//! creation instant counts as [`DEFAULT_ANCHOR_US`], so virtual-time tests get a clock that
//! never reads 0 (0 means "unknown" on the wire).
//!
//! Owns: the mapping ([`TimingState`], both roles), the client's clock-offset estimator (reset
//! with every new session: a new session may be a new host) and age window ([`ClientClock`],
//! kept in the client's state). Must never: read a clock itself, or put a frame's age
//! into the window without a clock offset (an age from an unknown clock is a guess).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::protocol::media::reassembler::Frame;
use crate::protocol::media::timing::{
    AGE_WINDOW, AgeSample, AgeSummary, AgeWindow, Arrival, FrameTiming,
};
use crate::protocol::time::clock::ClockOffset;
use crate::protocol::time::pacing::Schedule;

use super::{Connection, Side};

/// Host clock at the connection's creation when the driver set no anchor: one second, so
/// that no real instant maps to 0 ("unknown").
const DEFAULT_ANCHOR_US: u64 = 1_000_000;

/// Frame ages in [`crate::session::Stats::frame_age`] cover the frames delivered in this span
/// before the newest one.
pub const FRAME_AGE_SPAN: Duration = Duration::from_secs(1);

/// What the host knows about a frame's timing when it hands the frame over (see
/// [`crate::session::Session::seal_frame_timed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameTimingIn {
    /// Capture time in the host clock (microseconds of `CLOCK_MONOTONIC`); `None`: the frame
    /// counts as captured when it was handed over (render offset 0).
    pub capture_us: Option<u64>,
    /// The frame's duration in microseconds (0 = unknown).
    pub duration_us: u32,
}

/// The host clock (both roles).
pub(super) struct TimingState {
    anchor: Instant,
    anchor_us: u64,
}

/// Client: the host's clock offset and the window of frame ages.
pub(super) struct ClientClock {
    /// Host clock − ours.
    offset: ClockOffset,
    ages: AgeWindow,
    /// Delivery instants of the samples in `ages`, oldest first (at most [`AGE_WINDOW`]).
    delivered: VecDeque<Instant>,
}

impl Default for ClientClock {
    fn default() -> Self {
        ClientClock {
            offset: ClockOffset::new(),
            ages: AgeWindow::new(),
            delivered: VecDeque::with_capacity(AGE_WINDOW),
        }
    }
}

impl ClientClock {
    /// Summary of the frames delivered in [`FRAME_AGE_SPAN`] before the newest one.
    fn summary(&self) -> AgeSummary {
        let Some(&newest) = self.delivered.back() else {
            return AgeSummary::default();
        };
        let n = self
            .delivered
            .iter()
            .rev()
            .take_while(|&&t| newest.saturating_duration_since(t) <= FRAME_AGE_SPAN)
            .count();
        self.ages.summary_of_last(n)
    }
}

impl TimingState {
    pub(super) fn new(now: Instant) -> Self {
        TimingState {
            anchor: now,
            anchor_us: DEFAULT_ANCHOR_US,
        }
    }

    /// `t` in the host clock (µs), saturating at 0 before the clock's start.
    pub(super) fn us(&self, t: Instant) -> u64 {
        if t >= self.anchor {
            let d = (t - self.anchor).as_micros();
            self.anchor_us
                .saturating_add(u64::try_from(d).unwrap_or(u64::MAX))
        } else {
            let d = (self.anchor - t).as_micros();
            self.anchor_us
                .saturating_sub(u64::try_from(d).unwrap_or(u64::MAX))
        }
    }
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl Connection {
    /// Sets the host clock: `at` is `mono_us` microseconds of the host's monotonic clock. The
    /// driver samples both together once, before the first frame or ping; tests on virtual time
    /// give two connections different clocks with it.
    pub fn set_host_clock(&mut self, at: Instant, mono_us: u64) {
        self.timing.anchor = at;
        self.timing.anchor_us = mono_us;
    }

    /// `t` in the host clock (microseconds of the monotonic clock, see
    /// [`Connection::set_host_clock`]).
    pub fn host_clock_us(&self, t: Instant) -> u64 {
        self.timing.us(t)
    }

    /// Client: the host's clock minus ours (µs) and the bound on its error (half the RTT of
    /// the exchange it came from), once a ping was answered in this session.
    pub fn clock_offset(&self) -> Option<(i64, u64)> {
        let offset = &self.side.client()?.clock.offset;
        Some((offset.offset_us()?, offset.uncertainty_us()?))
    }

    /// Host: the timing a frame reserved at `now` (render) carries, given what the caller knows
    /// and the pacer's plan for its datagrams from `now` (`schedule`, the first `data_count`
    /// of them data). The send span runs to the release of the last data datagram (a lossless
    /// frame completes on it; parity follows) in that plan, the same plan
    /// [`Connection::pacing_schedule`] gives when nothing else is sent in between.
    pub(super) fn frame_timing(
        &mut self,
        now: Instant,
        input: FrameTimingIn,
        schedule: &Schedule,
        data_count: usize,
    ) -> FrameTiming {
        let render = self.timing.us(now);
        let capture = input.capture_us.filter(|&c| c != 0).unwrap_or(render);
        let last = schedule.release_of(data_count.saturating_sub(1));
        FrameTiming {
            capture_us: capture,
            duration_us: input.duration_us,
            render_offset_us: clamp_u32(render.saturating_sub(capture)),
            send_span_us: clamp_u32(last.saturating_duration_since(now).as_micros() as u64),
        }
    }

    /// Answers a ping received at `now`: its `t1`, and our clock as `t2` and `t3` (received and
    /// answered in the same instant: the connection does no work in between).
    pub(super) fn on_ping(&mut self, t1: u64, now: Instant) {
        let t = self.timing.us(now);
        self.send_control(&crate::protocol::control::Control::Pong { t1, t2: t, t3: t });
    }

    /// A pong arrived at `now`: the RTT sample `(t4 − t1) − (t3 − t2)` and, on the client, an
    /// exchange for the clock offset.
    pub(super) fn on_pong(&mut self, t1: u64, t2: u64, t3: u64, now: Instant) {
        let t4 = self.timing.us(now);
        if t4 < t1 || t3 < t2 || t3 - t2 > t4 - t1 {
            return;
        }
        let sample = Duration::from_micros((t4 - t1) - (t3 - t2));
        self.srtt = Some(match self.srtt {
            Some(s) => (s * 7 + sample) / 8,
            None => sample,
        });
        if let Side::Client(c) = &mut self.side {
            c.clock.offset.on_exchange(t1, t2, t3, t4);
        }
    }

    /// A new session: the clock offset starts over (the peer may be another host).
    pub(super) fn reset_clock_offset(&mut self) {
        if let Some(c) = self.side.client_mut() {
            c.clock.offset.reset();
        }
    }

    /// Client: records the age of a frame about to be delivered (when the clock offset is
    /// known and the host sent a capture time).
    pub(super) fn record_frame_age(&mut self, f: &Frame) {
        let Some(c) = self.side.client_mut() else {
            return;
        };
        let clock = &mut c.clock;
        let Some(offset) = clock.offset.offset_us() else {
            return;
        };
        let arrival = Arrival {
            last_data_us: self.timing.us(f.last_data_at),
            complete_us: self.timing.us(f.complete_at),
        };
        let Some(sample) = AgeSample::new(&f.timing, &arrival, offset) else {
            return;
        };
        clock.ages.push(sample);
        if clock.delivered.len() == AGE_WINDOW {
            clock.delivered.pop_front();
        }
        clock.delivered.push_back(f.complete_at);
    }

    /// Fills the timing part of the stats.
    pub(super) fn timing_stats(&self, s: &mut crate::session::Stats) {
        if let Some(c) = self.side.client() {
            s.frame_age = c.clock.summary();
        }
        if let Some((o, u)) = self.clock_offset() {
            s.clock_offset_us = Some(o);
            s.clock_offset_uncertainty_us = Some(u);
        }
    }
}
