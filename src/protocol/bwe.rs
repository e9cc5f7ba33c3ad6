//! Bandwidth estimation on the host: how fast the path takes our datagrams, from the client's
//! [`Feedback`].
//!
//! This module owns the estimate and the control law that moves it; it turns the host's record
//! of each frame's send times and the client's arrival reports into a target bitrate for the
//! encoder, a pacing rate and a state. It never reads a clock (every method takes `now`), never
//! sends, never touches the encoder, and never trusts feedback beyond the frames it sent:
//! reports for unknown or already reported frames are ignored, and memory is bounded.
//!
//! # Signals
//!
//! - **Queue delay.** For every reported frame, the one-way delay of its first datagram
//!   (client arrival − host send; the clocks' offset is unknown but constant) minus its minimum
//!   over the last [`MIN_DELAY_WINDOW`] of arrivals. The first datagram of a frame waits only
//!   behind what earlier frames (or other flows) left in the bottleneck, so this is the
//!   *standing* queue; a frame's own serialization does not count. The minimum over the last
//!   [`STANDING_WINDOW`] filters jitter (a sample can only be too high, never too low).
//! - **Delay gradient.** The least-squares slope of that queue delay over the arrival times of
//!   the last [`TREND_SAMPLES`] frames (a trendline filter, as GCC). The slope is the ratio by
//!   which the input exceeds the bottleneck rate: +0.1 means 10 % too fast. Over-use is a
//!   standing queue above [`QUEUE_HIGH`], or a queue above [`QUEUE_LOW`] that grows faster than
//!   [`SLOPE_OVERUSE`]; under-use a queue that shrinks that fast.
//! - **Loss.** The host knows how many datagrams each frame had; the client reports how many
//!   arrived. Loss over the last [`LOSS_WINDOW`] counts as congestion only beyond the *loss
//!   budget*: half the parity share actually sent (what FEC repairs without strain), and at
//!   least [`LOSS_FLOOR`]. Loss from a full drop-tail queue comes with a queue delay near the
//!   queue's length and is caught by the delay signal first; loss that FEC repairs is not
//!   congestion.
//! - **Delivery rate.** Bytes that arrived over the last [`DELIVERY_WINDOW`] of arrival time
//!   divided by that span (BBR's delivery rate). While a queue stands, the bottleneck is busy
//!   and this is its rate (our share of it, when shared).
//!
//! # States and the control law
//!
//! The estimate `E` is in wire bits per second (datagram bytes, parity and headers included).
//!
//! - [`BweState::Startup`]: no congestion seen yet; `E` grows ×[`MULTIPLICATIVE_GAIN`] per
//!   response time (one RTT + [`RESPONSE_MARGIN`], at least [`MIN_RESPONSE_TIME`]: 100 ms on a
//!   LAN, so ×2.2 a second: 8 → 20 Mbit/s in 1.2 s).
//! - [`BweState::Drain`]: over-use. `E` drops at once to `g × D` (`D` the delivery rate,
//!   `g = clamp(1 − q / DRAIN_TIME, 0.5, DRAIN_GAIN)`): below what the bottleneck delivers, so
//!   the queue `q` empties within about [`DRAIN_TIME`], as BBR's drain. `D` becomes the
//!   *capacity* estimate. If the queue still does not shrink a response time later, it cuts
//!   again from a fresh `D` (the capacity kept falling). It leaves when the standing queue is
//!   below [`QUEUE_LOW`].
//! - [`BweState::Hold`]: after a drain (for one response time), while some queue stands or
//!   shrinks, or while loss exceeds the budget (then, at most once per loss window,
//!   `E ×= 1 − loss / 2` as GCC's loss controller). `E` stays.
//! - [`BweState::Increase`]: the queue is empty. Up to [`NEAR_CAPACITY`] × the capacity
//!   estimate, `E` grows additively by [`ADDITIVE_STEP_BPS`] per response time (an equal
//!   absolute step for every flow, which makes flows sharing a bottleneck converge to equal
//!   shares under the multiplicative drains, as AIMD); beyond it the capacity has probably
//!   risen and `E` grows multiplicatively as in startup. After a rise from 12 to 30 Mbit/s,
//!   a 20 Mbit/s stream is back at its maximum in about 3 s (test:
//!   `follows_capacity_steps_12_30_8_30`).
//!
//! `E` never grows beyond [`APP_LIMITED_GAIN`] × the highest recent delivery rate (an encoder
//! that sends less than its budget must not let the estimate run away), and is bounded so the
//! media bitrate stays within the configured minimum and maximum.
//!
//! # Outputs
//!
//! [`Estimate::target_bitrate_bps`] is the encoder's budget: `E` × the media share of what was
//! actually sent (frame bytes ÷ datagram bytes over the last [`MEDIA_SHARE_FRAMES`] frames), so
//! FEC parity, repair and headers fit inside the estimate. [`Estimate::pacing_rate_bps`] is
//! `E` × [`PACING_GAIN`]. A drop of the target by [`LARGE_DROP`] or more within
//! [`LARGE_DROP_WINDOW`] is reported once as [`BweEvent::LargeDrop`], with the number of frames
//! known lost in that window so the caller asks the encoder for a keyframe only when the
//! client really lost pictures.
//!
//! No feedback for [`FEEDBACK_TIMEOUT`] while frames are sent halves `E` (once per timeout): the
//! path or the client went silent, and sending on at full rate into it only fills a queue.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::feedback::Feedback;
use super::wire::seq_diff;

/// Span of arrival time over which the minimum one-way delay is kept (as BBR's min RTT
/// window): long enough to see an empty queue between drains, short enough to follow a route
/// change and to keep clock drift between the two ends (≈ 50 ppm → 0.5 ms) negligible.
pub const MIN_DELAY_WINDOW: Duration = Duration::from_secs(10);

/// The standing queue is the minimum queue delay over this much of recent arrivals.
pub const STANDING_WINDOW: Duration = Duration::from_millis(50);

/// Frames in the trendline (delay gradient) fit.
pub const TREND_SAMPLES: usize = 20;

/// Below this standing queue the queue counts as empty.
pub const QUEUE_LOW: Duration = Duration::from_millis(2);

/// A standing queue above this is over-use whatever its trend.
pub const QUEUE_HIGH: Duration = Duration::from_millis(6);

/// Queue growth (seconds of delay per second) above which a queue over [`QUEUE_LOW`] is over-use.
pub const SLOPE_OVERUSE: f64 = 0.05;

/// Delivery rate window (arrival time on the client).
pub const DELIVERY_WINDOW: Duration = Duration::from_millis(100);

/// A delivery rate needs at least this span of arrivals to count (a single frame's burst
/// says nothing about the path's rate over time).
const DELIVERY_MIN_SPAN: Duration = Duration::from_millis(20);

/// Loss is measured over this window of feedback.
pub const LOSS_WINDOW: Duration = Duration::from_millis(500);

/// Loss below this fraction is never congestion (as GCC's 2 %).
pub const LOSS_FLOOR: f64 = 0.02;

/// The loss budget is this fraction of the parity share sent.
pub const LOSS_BUDGET_OF_PARITY: f64 = 0.5;

/// Fewest datagrams in the loss window before a loss fraction is trusted.
const LOSS_MIN_DATAGRAMS: u64 = 50;

/// Most the estimate is cut to on over-use, relative to the delivery rate.
pub const DRAIN_GAIN: f64 = 0.85;

/// A drain aims to empty the queue within about this long.
pub const DRAIN_TIME: Duration = Duration::from_millis(250);

/// Growth per response time while far from the capacity estimate.
pub const MULTIPLICATIVE_GAIN: f64 = 1.08;

/// Growth per response time near the capacity estimate, in wire bits per second.
pub const ADDITIVE_STEP_BPS: f64 = 150_000.0;

/// Below this multiple of the capacity estimate growth is additive.
pub const NEAR_CAPACITY: f64 = 1.1;

/// The estimate does not grow beyond this multiple of the highest recent delivery rate.
pub const APP_LIMITED_GAIN: f64 = 1.5;

/// Pacing rate relative to the estimate: a frame at full budget leaves within about two
/// thirds of its interval, and the bottleneck never sees more than a third of a frame queued
/// by our own pacing.
pub const PACING_GAIN: f64 = 1.5;

/// The shortest response time, and the one used before an RTT is known.
pub const MIN_RESPONSE_TIME: Duration = Duration::from_millis(100);

/// Response time = RTT + this (the feedback interval, the standing window and a margin).
pub const RESPONSE_MARGIN: Duration = Duration::from_millis(80);

/// Longest response time.
const MAX_RESPONSE_TIME: Duration = Duration::from_secs(1);

/// No feedback for this long while sending halves the estimate.
pub const FEEDBACK_TIMEOUT: Duration = Duration::from_millis(500);

/// A target drop of at least this fraction within [`LARGE_DROP_WINDOW`] is a large drop.
pub const LARGE_DROP: f64 = 0.4;

/// See [`LARGE_DROP`].
pub const LARGE_DROP_WINDOW: Duration = Duration::from_secs(1);

/// The media share is measured over this many recent frames.
pub const MEDIA_SHARE_FRAMES: usize = 60;

/// Frames whose send record is kept for matching feedback: 17 s at 60 fps, 4 s at 240 fps.
pub const MAX_RECORDS: usize = 1024;

/// Bounds of the small windows (memory only; their time spans bound them in practice).
const MAX_DELIVERIES: usize = 256;
const MAX_LOSS_ENTRIES: usize = 1024;
const MAX_RATE_SAMPLES: usize = 256;

/// Configuration, in media (encoder) bits per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BweConfig {
    /// The target bitrate never goes below this.
    pub min_bitrate_bps: u64,
    /// Nor above this (the bitrate the user configured).
    pub max_bitrate_bps: u64,
    /// Target before any feedback.
    pub start_bitrate_bps: u64,
    /// Media share of the wire bytes assumed before a frame was sent (1 / (1 + FEC share),
    /// less headers).
    pub initial_media_share: f64,
}

impl Default for BweConfig {
    fn default() -> Self {
        BweConfig {
            min_bitrate_bps: 500_000,
            max_bitrate_bps: 20_000_000,
            start_bitrate_bps: 8_000_000,
            initial_media_share: 0.8,
        }
    }
}

/// What the estimator is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BweState {
    /// No congestion seen yet: multiplicative increase.
    Startup,
    /// The queue is empty: additive increase near the last capacity, multiplicative beyond.
    Increase,
    /// Holding the rate: right after a drain, while a queue stands or drains, or while loss
    /// exceeds the FEC budget.
    Hold,
    /// Over-use: below the delivery rate until the queue is empty.
    Drain,
}

/// The delay detector's verdict on the latest feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DelaySignal {
    Underuse,
    Normal,
    Overuse,
}

/// A snapshot of the estimator (for stats and the element message).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub state: BweState,
    pub signal: DelaySignal,
    /// What the path carries, wire bits per second (datagram bytes incl. parity and headers).
    pub estimate_bps: u64,
    /// The encoder's budget, media bits per second, within the configured bounds.
    pub target_bitrate_bps: u64,
    /// The pacer's rate, bits per second.
    pub pacing_rate_bps: u64,
    /// Standing queue delay.
    pub queue_delay: Duration,
    /// Queue delay gradient (s/s).
    pub delay_slope: f64,
    /// Latest delivery rate, wire bits per second (0 = not yet known).
    pub delivery_rate_bps: u64,
    /// Delivery rate at the last over-use (0 = none yet).
    pub capacity_bps: u64,
    /// Loss fraction over the loss window.
    pub loss: f64,
    /// Loss fraction that is not congestion (what the parity sent repairs).
    pub loss_budget: f64,
    /// Media bytes ÷ wire bytes of recent frames.
    pub media_share: f64,
}

/// Something the caller should act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BweEvent {
    /// The target fell by [`LARGE_DROP`] or more within [`LARGE_DROP_WINDOW`].
    LargeDrop {
        from_bps: u64,
        to_bps: u64,
        /// Frames known lost (fewer datagrams arrived than the frame had data shards) in the
        /// window. Ask for a keyframe only when this is not 0.
        frames_lost: u64,
    },
}

/// What the host sent for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentFrame {
    /// When the first datagram was handed to the socket.
    pub first_send: Instant,
    /// When the last one was.
    pub last_send: Instant,
    /// Datagrams, data and parity.
    pub datagrams: u32,
    /// Of which data shards.
    pub data_datagrams: u32,
    /// Bytes of all datagrams (UDP payloads).
    pub wire_bytes: u64,
    /// Bytes of the access unit.
    pub media_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    sent: SentFrame,
    acked: bool,
}

#[derive(Debug, Clone, Copy)]
struct LossEntry {
    at: Instant,
    sent: u64,
    lost: i64,
    parity: u64,
}

/// The host's estimator for one session. See the module docs for the control law.
///
/// Call [`BandwidthEstimator::on_frame_sent`] for every frame, [`BandwidthEstimator::on_feedback`]
/// for every feedback message, [`BandwidthEstimator::set_rtt`] when an RTT sample arrives and
/// [`BandwidthEstimator::handle_timeout`] at [`BandwidthEstimator::poll_timeout`]; read
/// [`BandwidthEstimator::estimate`] and drain [`BandwidthEstimator::poll_event`] after each.
#[derive(Debug, Clone)]
pub struct BandwidthEstimator {
    cfg: BweConfig,
    epoch: Instant,
    records: VecDeque<Record>,
    /// Frame index of `records[0]`.
    records_base: u32,
    /// Per-second buckets of client arrival time: (bucket, minimum one-way delay µs).
    min_owd: VecDeque<(i64, i64)>,
    /// (client arrival µs, queue delay µs) of recent frames.
    samples: VecDeque<(i64, i64)>,
    /// (first arrival µs, last arrival µs, bytes) of recent frames.
    deliveries: VecDeque<(i64, i64, u64)>,
    /// Recent delivery rates (host time, bps), for the app-limited cap.
    delivery_rates: VecDeque<(Instant, f64)>,
    delivery_rate: Option<f64>,
    losses: VecDeque<LossEntry>,
    lost_frames: VecDeque<Instant>,

    estimate: f64,
    state: BweState,
    signal: DelaySignal,
    queue_us: i64,
    slope: f64,
    capacity: Option<f64>,
    state_since: Instant,
    last_update: Option<Instant>,
    last_cut: Option<Instant>,
    last_loss_cut: Option<Instant>,
    last_feedback: Option<Instant>,
    last_sent: Option<Instant>,
    last_starve_cut: Option<Instant>,
    sending_since: Option<Instant>,
    rtt: Option<Duration>,

    recent_targets: VecDeque<(Instant, u64)>,
    drop_active: bool,
    events: VecDeque<BweEvent>,
}

fn micros(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

impl BandwidthEstimator {
    pub fn new(cfg: BweConfig, now: Instant) -> Self {
        let mut cfg = cfg;
        cfg.max_bitrate_bps = cfg.max_bitrate_bps.max(1);
        cfg.min_bitrate_bps = cfg.min_bitrate_bps.clamp(1, cfg.max_bitrate_bps);
        cfg.start_bitrate_bps = cfg
            .start_bitrate_bps
            .clamp(cfg.min_bitrate_bps, cfg.max_bitrate_bps);
        if !(cfg.initial_media_share.is_finite()
            && cfg.initial_media_share > 0.0
            && cfg.initial_media_share <= 1.0)
        {
            cfg.initial_media_share = BweConfig::default().initial_media_share;
        }
        let estimate = cfg.start_bitrate_bps as f64 / cfg.initial_media_share;
        BandwidthEstimator {
            cfg,
            epoch: now,
            records: VecDeque::new(),
            records_base: 0,
            min_owd: VecDeque::new(),
            samples: VecDeque::new(),
            deliveries: VecDeque::new(),
            delivery_rates: VecDeque::new(),
            delivery_rate: None,
            losses: VecDeque::new(),
            lost_frames: VecDeque::new(),
            estimate,
            state: BweState::Startup,
            signal: DelaySignal::Normal,
            queue_us: 0,
            slope: 0.0,
            capacity: None,
            state_since: now,
            last_update: None,
            last_cut: None,
            last_loss_cut: None,
            last_feedback: None,
            last_sent: None,
            last_starve_cut: None,
            sending_since: None,
            rtt: None,
            recent_targets: VecDeque::new(),
            drop_active: false,
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &BweConfig {
        &self.cfg
    }

    /// Records what was sent for frame `frame_index` (frames are numbered +1 each; a jump
    /// forgets the older records).
    pub fn on_frame_sent(&mut self, frame_index: u32, sent: SentFrame, now: Instant) {
        let next = self.records_base.wrapping_add(self.records.len() as u32);
        if self.records.is_empty() || frame_index != next {
            self.records.clear();
            self.records_base = frame_index;
        }
        if self.records.len() >= MAX_RECORDS {
            self.records.pop_front();
            self.records_base = self.records_base.wrapping_add(1);
        }
        self.records.push_back(Record { sent, acked: false });
        // A new run of sending (the first frame, or after a pause longer than the feedback
        // timeout) starts the feedback deadline afresh: a pause is not starvation.
        if self
            .last_sent
            .is_none_or(|t| now.saturating_duration_since(t) >= FEEDBACK_TIMEOUT)
        {
            self.sending_since = Some(now);
        }
        self.last_sent = Some(now);
    }

    /// The latest RTT sample (from ping/pong); it sets the response time.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = Some(rtt);
    }

    fn response_time(&self) -> Duration {
        self.rtt
            .map_or(MIN_RESPONSE_TIME, |r| r.saturating_add(RESPONSE_MARGIN))
            .clamp(MIN_RESPONSE_TIME, MAX_RESPONSE_TIME)
    }

    fn media_share(&self) -> f64 {
        let (media, wire) = self
            .records
            .iter()
            .rev()
            .take(MEDIA_SHARE_FRAMES)
            .fold((0u64, 0u64), |(m, w), r| {
                (
                    m.saturating_add(r.sent.media_bytes.min(r.sent.wire_bytes)),
                    w.saturating_add(r.sent.wire_bytes),
                )
            });
        if wire == 0 || media == 0 {
            self.cfg.initial_media_share
        } else {
            media as f64 / wire as f64
        }
    }

    fn bounds(&self) -> (f64, f64) {
        let share = self.media_share();
        (
            self.cfg.min_bitrate_bps as f64 / share,
            self.cfg.max_bitrate_bps as f64 / share,
        )
    }

    fn record_mut(&mut self, index: u32) -> Option<&mut Record> {
        let d = seq_diff(index, self.records_base);
        if d < 0 {
            return None;
        }
        self.records.get_mut(d as usize)
    }

    /// (loss fraction, loss budget) over the loss window.
    fn loss(&self) -> (f64, f64) {
        let (mut sent, mut lost, mut parity) = (0u64, 0i64, 0u64);
        for e in &self.losses {
            sent += e.sent;
            lost += e.lost;
            parity += e.parity;
        }
        if sent < LOSS_MIN_DATAGRAMS {
            return (0.0, LOSS_FLOOR);
        }
        let loss = lost.max(0) as f64 / sent as f64;
        let budget = (LOSS_BUDGET_OF_PARITY * parity as f64 / sent as f64).max(LOSS_FLOOR);
        (loss.min(1.0), budget)
    }

    /// Takes one feedback message received at `now`.
    pub fn on_feedback(&mut self, fb: &Feedback, now: Instant) {
        self.last_feedback = Some(now);
        if fb.late > 0 {
            self.push_loss(LossEntry {
                at: now,
                sent: 0,
                lost: -(fb.late as i64),
                parity: 0,
            });
        }
        let mut any = false;
        for i in 0..fb.frames.len() {
            let index = fb.frame_index(i);
            let epoch = self.epoch;
            let Some(rec) = self.record_mut(index) else {
                continue;
            };
            if rec.acked {
                continue;
            }
            rec.acked = true;
            let sent = rec.sent;
            let f = fb.frames[i];
            any = true;
            self.push_loss(LossEntry {
                at: now,
                sent: sent.datagrams as u64,
                lost: sent.datagrams.saturating_sub(f.received) as i64,
                parity: sent.datagrams.saturating_sub(sent.data_datagrams) as u64,
            });
            if f.received < sent.data_datagrams {
                if self.lost_frames.len() >= MAX_LOSS_ENTRIES {
                    self.lost_frames.pop_front();
                }
                self.lost_frames.push_back(now);
            }
            if let Some((first, last)) = fb.arrival_us(i) {
                let send_us = micros(sent.first_send.saturating_duration_since(epoch));
                self.on_arrival(first, first.saturating_sub(send_us), last, f.bytes);
            }
        }
        self.expire(now);
        if any {
            self.update_delivery_rate(now);
            self.control(now);
        }
    }

    fn push_loss(&mut self, e: LossEntry) {
        if self.losses.len() >= MAX_LOSS_ENTRIES {
            self.losses.pop_front();
        }
        self.losses.push_back(e);
    }

    fn on_arrival(&mut self, first_us: i64, owd_us: i64, last_us: i64, bytes: u64) {
        // Windowed minimum of the one-way delay, in per-second buckets of arrival time.
        let bucket = first_us.div_euclid(1_000_000);
        let buckets = MIN_DELAY_WINDOW.as_secs() as i64;
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
        if self.samples.len() >= TREND_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((first_us, owd_us.saturating_sub(min)));

        if self.deliveries.len() >= MAX_DELIVERIES {
            self.deliveries.pop_front();
        }
        self.deliveries.push_back((first_us, last_us, bytes));
    }

    fn expire(&mut self, now: Instant) {
        while self
            .losses
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > LOSS_WINDOW)
        {
            self.losses.pop_front();
        }
        while self
            .lost_frames
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) > LARGE_DROP_WINDOW)
        {
            self.lost_frames.pop_front();
        }
        while self
            .delivery_rates
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > LARGE_DROP_WINDOW)
        {
            self.delivery_rates.pop_front();
        }
        if let Some(newest) = self.deliveries.iter().map(|d| d.1).max() {
            let keep = micros(DELIVERY_WINDOW) * 4;
            while self
                .deliveries
                .front()
                .is_some_and(|d| d.1 < newest.saturating_sub(keep))
            {
                self.deliveries.pop_front();
            }
        }
    }

    fn update_delivery_rate(&mut self, now: Instant) {
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

    /// Standing queue (µs) and its slope.
    fn delay_signal(&self) -> (i64, f64) {
        let Some(&(newest, _)) = self.samples.back() else {
            return (0, 0.0);
        };
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
            return (standing, 0.0);
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
        let slope = if sxx > 0.0 && (self.samples[n - 1].0 - x0) >= 20_000 {
            sxy / sxx
        } else {
            0.0
        };
        (standing, slope)
    }

    fn set_state(&mut self, s: BweState, now: Instant) {
        if self.state != s {
            self.state = s;
            self.state_since = now;
        }
    }

    fn control(&mut self, now: Instant) {
        let rt = self.response_time();
        let dt = self
            .last_update
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
            .min(rt);
        self.last_update = Some(now);
        let (q, slope) = self.delay_signal();
        self.queue_us = q;
        self.slope = slope;
        let q_low = micros(QUEUE_LOW);
        let overuse = q > micros(QUEUE_HIGH) || (q > q_low && slope > SLOPE_OVERUSE);
        let underuse = q > q_low && slope < -SLOPE_OVERUSE;
        self.signal = if overuse {
            DelaySignal::Overuse
        } else if underuse {
            DelaySignal::Underuse
        } else {
            DelaySignal::Normal
        };
        let (loss, budget) = self.loss();
        let since_cut = self
            .last_cut
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t));

        if overuse {
            // Cut on entering over-use, and again if a response time later the queue still
            // does not shrink (the capacity kept falling, or the first cut used a stale rate).
            if self.state != BweState::Drain || (since_cut >= rt && slope > -SLOPE_OVERUSE / 2.0)
            {
                let d = self.delivery_rate.unwrap_or(self.estimate);
                let gain = (1.0 - q as f64 / micros(DRAIN_TIME) as f64).clamp(0.5, DRAIN_GAIN);
                self.capacity = Some(d);
                self.estimate = self.estimate.min(gain * d);
                self.last_cut = Some(now);
                self.set_state(BweState::Drain, now);
            }
        } else if self.state == BweState::Drain {
            if q < q_low {
                self.set_state(BweState::Hold, now);
            }
        } else if loss > budget {
            let due = self
                .last_loss_cut
                .is_none_or(|t| now.saturating_duration_since(t) >= LOSS_WINDOW);
            if due {
                self.estimate *= 1.0 - 0.5 * loss;
                self.last_loss_cut = Some(now);
            }
            self.set_state(BweState::Hold, now);
        } else if q >= q_low || underuse {
            self.set_state(BweState::Hold, now);
        } else if self.state == BweState::Hold && now.saturating_duration_since(self.state_since) < rt
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
            let grown = if near {
                self.estimate + ADDITIVE_STEP_BPS * frac
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
        self.after_change(now);
    }

    fn after_change(&mut self, now: Instant) {
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
        if self.recent_targets.len() >= MAX_RATE_SAMPLES {
            self.recent_targets.pop_front();
        }
        self.recent_targets.push_back((now, target));
        let reference = self.recent_targets.iter().map(|t| t.1).max().unwrap_or(target);
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

    /// Start of the current feedback deadline: the newest of the last feedback, the last
    /// starvation cut and the start of the current run of sending.
    fn deadline_from(&self) -> Instant {
        let mut from = self.last_feedback.unwrap_or(self.epoch);
        for t in [self.last_starve_cut, self.sending_since].into_iter().flatten() {
            from = from.max(t);
        }
        from
    }

    /// When to call [`BandwidthEstimator::handle_timeout`] next; `None` while no frame was sent
    /// since the deadline started.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sent = self.last_sent?;
        let from = self.deadline_from();
        (sent >= from).then_some(from + FEEDBACK_TIMEOUT)
    }

    /// Halves the estimate when no feedback arrived for [`FEEDBACK_TIMEOUT`] while frames were
    /// sent (once per timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(sent) = self.last_sent else { return };
        let from = self.deadline_from();
        if now.saturating_duration_since(from) < FEEDBACK_TIMEOUT || sent < from {
            return;
        }
        self.estimate *= 0.5;
        self.last_starve_cut = Some(now);
        self.last_cut = Some(now);
        self.set_state(BweState::Drain, now);
        self.after_change(now);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<BweEvent> {
        self.events.pop_front()
    }

    /// The current estimate and its outputs.
    pub fn estimate(&self) -> Estimate {
        let share = self.media_share();
        let (lo, hi) = self.bounds();
        let e = self.estimate.clamp(lo, hi);
        let target = ((e * share) as u64).clamp(self.cfg.min_bitrate_bps, self.cfg.max_bitrate_bps);
        let (loss, loss_budget) = self.loss();
        Estimate {
            state: self.state,
            signal: self.signal,
            estimate_bps: e as u64,
            target_bitrate_bps: target,
            pacing_rate_bps: ((e * PACING_GAIN) as u64).max(1),
            queue_delay: Duration::from_micros(self.queue_us.max(0) as u64),
            delay_slope: self.slope,
            delivery_rate_bps: self.delivery_rate.map_or(0, |d| d as u64),
            capacity_bps: self.capacity.map_or(0, |c| c as u64),
            loss,
            loss_budget,
            media_share: share,
        }
    }
}
