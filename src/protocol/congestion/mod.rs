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
//! - **Queue delay.** For every reported frame, the one-way delay of its first datagram (client
//!   arrival − host send; the clocks' offset is unknown but constant) — or of its last datagram,
//!   when that is smaller and the whole frame arrived (so the last received is the last sent) —
//!   minus its minimum over the last [`MIN_DELAY_WINDOW`] of arrivals. The first datagram of a
//!   frame waits only behind what earlier frames (or other flows) left in the bottleneck, so this
//!   is the *standing* queue; a frame's own serialization does not count. A paced frame's last
//!   datagram leaves two thirds of an interval after its first: when the first waited behind
//!   another flow's frame that has drained since, the last did not, and the wait is not read as a
//!   standing queue (a queue that stands delays both). The minimum over the last
//!   [`STANDING_WINDOW`] filters jitter (a sample can only be too high, never too low). The 2 s
//!   baseline is short on purpose: two streams at the same frame rate keep a fixed phase for
//!   minutes, and the one whose frames arrive just after the other's waits behind the other frame
//!   every time; a short baseline absorbs that constant wait, which draining would not remove
//!   anyway.
//! - **Delay gradient.** The least-squares slope of that queue delay over the arrival times of
//!   the last [`TREND_SAMPLES`] frames (a trendline filter, as GCC). The slope is the ratio by
//!   which the input exceeds the bottleneck rate: +0.1 means 10 % too fast. Over-use is a
//!   queue above [`QUEUE_LOW`] that grows faster than [`SLOPE_OVERUSE`], or a standing queue
//!   above [`QUEUE_HIGH`] whatever its trend; under-use a queue that shrinks faster than
//!   [`SLOPE_DRAINING`].
//! - **Jitter.** A wide-area path varies each datagram's delay (±5 ms is common) with no queue
//!   behind it. Its scale is the median difference of consecutive frames' queue samples over
//!   the last [`JITTER_SAMPLES`] (a queue that stands or grows changes little from one frame to
//!   the next; jitter changes a lot). Both queue thresholds count from [`JITTER_MARGIN`] × that
//!   up, and a slope counts (for over-use, hold and draining) only beyond
//!   [`SLOPE_SIGNIFICANCE`] standard errors of the trendline fit, from the fit's residuals. On
//!   a clean path both corrections are small (a bottleneck's own frames, ±10 % in size, vary
//!   by up to ≈ 1 ms from frame to frame, which lifts the thresholds by up to ≈ 3 ms); on a
//!   ±5 ms path a queue is seen from ≈ 11 ms standing (or ≈ 14 ms whatever its trend) instead
//!   of 2 / 5 ms: the price of not reading jitter as congestion is a queue a few jitters deep
//!   before a cut (simulator: a 12 Mbit/s bottleneck behind that path is still used at
//!   75–100 %, p99 queue 7–23 ms over 16 seeds and both burst settings, test
//!   `a_bottleneck_behind_a_jittery_bursty_path_is_still_found`).
//!
//!   *Fairness.* The gradient is the primary over-use signal and the level only a backstop,
//!   because the gradient is the signal that flows sharing a bottleneck see alike. A flow whose
//!   frames land just behind another flow's frame measures that frame's wait as queue; the
//!   delay baseline absorbs its mean, but not its changes: when the other flow grows after a
//!   drain, the trailing flow's queue rises by about the growth of the other's frame (≈ 1–2 ms
//!   at 10 Mbit/s each through 20), slowly. With a low level threshold (3 ms, before) that
//!   alone tripped over-use for the trailing flow, which then took drains the other did not:
//!   under AIMD the shares settle in the inverse ratio of the cut counts, and the trailing
//!   flow got 55–85 % of the other's rate. A real standing queue grows at (sum − capacity) /
//!   capacity, which both flows see; the level threshold sits above the trailing flow's
//!   offset, and the gradient threshold is low enough to catch a single flow's slow additive
//!   approach before the queue reaches it (simulator, 16 seeds × 6 frame phases incl.
//!   lock step: every pair within 11 %, was 45 %).
//! - **Loss.** The host knows how many datagrams each frame had; the client reports how many
//!   arrived. Loss over the last [`LOSS_WINDOW`] counts as congestion only beyond the *loss
//!   budget*: half the parity share actually sent (what FEC repairs without strain), and at
//!   least [`LOSS_FLOOR`] — and only with *delay evidence* (a queue above the jitter floor
//!   within the loss window and a response time before it) or beyond the whole parity share
//!   (more than FEC can repair, whatever the cause). Loss from a full drop-tail queue comes
//!   with a queue delay near the queue's length and is caught by the delay signal first; loss
//!   without any queue is the path's (radio, a lossy link, Gilbert-Elliott bursts on a WAN:
//!   ≈ 9 % in bursts of 5 varies between 0 and 20 % over half a second), and cutting for it
//!   only starves the encoder while the loss stays. The trade-off: a policer that drops
//!   without queueing is answered only once its loss exceeds the parity share, so a stream
//!   above a policer's rate runs with that much loss, repaired by FEC, until then. A
//!   policer drops each frame's tail, which parity spread over the frame repairs poorly
//!   (simulator, ignored diagnostic `policer_sweep`: a 20 Mbit/s stream behind a 12 Mbit/s
//!   policer settles at ≈ 15 Mbit/s on the wire with 20 % parity, and about half its frames
//!   decodable).
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
//!   below [`QUEUE_LOW`] (above the jitter floor, as every queue threshold here).
//! - [`BweState::Hold`]: for one response time after a drain; while a queue above
//!   [`QUEUE_LOW`] (standing, or in the two newest frames) grows faster than `HOLD_SLOPE`
//!   (0.5 %) or shrinks faster than [`SLOPE_DRAINING`] (significantly, see *Jitter*); and while
//!   loss counts as congestion (see *Loss*; then,
//!   at most once per loss window and only when no delay cut came in the last loss window +
//!   response time, `E ×= 1 − loss / 2` as GCC's loss controller: loss that came with a full
//!   queue was already answered by the drain). `E` stays.
//! - [`BweState::Increase`]: the queue is empty (or small and not growing). Up to
//!   [`NEAR_CAPACITY`] × the capacity estimate, `E` grows additively by [`ADDITIVE_STEP_BPS`]
//!   per response time — a third of that between [`SLOW_NEAR_CAPACITY`] and
//!   [`SLOW_ABOVE_CAPACITY`] × the capacity, where the queue built last time. An equal
//!   absolute step for every flow makes flows sharing a bottleneck converge to equal shares
//!   under the multiplicative drains, as AIMD. Beyond it the capacity has probably risen and
//!   `E` grows multiplicatively as in startup. After a rise from 12 to 30 Mbit/s, a 20 Mbit/s
//!   stream is back at its maximum in about 3.5 s (test: `follows_capacity_steps_12_30_8_30`).
//!
//! The capacity estimate is the delivery rate at the last over-use, divided by `1 − loss` for
//! loss within the budget (datagrams lost after the bottleneck did cross it).
//!
//! `E` never grows beyond [`APP_LIMITED_GAIN`] × the highest recent delivery rate (an encoder
//! that sends less than its budget must not let the estimate run away), and is bounded so the
//! media bitrate stays within the configured minimum and maximum.
//!
//! # Outputs
//!
//! [`Estimate::target_bitrate_bps`] is the encoder's budget: `E` × the media share of what was
//! actually sent (frame bytes ÷ datagram bytes over the last [`MEDIA_SHARE_FRAMES`] frames of
//! at least [`MEDIA_SHARE_MIN_DATA`] data shards), so FEC parity, repair and headers fit inside
//! the estimate. [`Estimate::pacing_rate_bps`] is `E` × [`PACING_GAIN`]; [`Estimate::pace`]
//! says whether to use it: once the path has shown congestion, while a queue stands or drains
//! or the target is below the maximum (the path, not the user, limits the stream). Paced in
//! small chunks, every frame of every flow through a bottleneck is spread over two thirds of
//! its interval, so no flow's frame stands there as one burst in front of another's; on a
//! path with room the automatic pacer's short bursts cost nothing.
//!
//! # Link share (opt-in)
//!
//! At the rate the control law settles on (~94 % of a bottleneck), a frame takes most of its
//! interval to cross, and a larger one spills into the next: no standing queue, but a frame's
//! capture → arrival grows towards a frame interval. [`BweConfig::link_share`] below 1 trades
//! bitrate for that time. Every whole frame of at least [`LINK_MIN_DATAGRAMS`] datagrams gives a
//! dispersion sample (its bytes after the first datagram ÷ its arrival span); a frame the
//! bottleneck spread out ([`LINK_SPREAD`]) measures the path's rate. The link rate is the
//! median of the spread samples over [`LINK_WINDOW`], and `E` is capped at share × link rate in
//! every state. Frames then leave as bursts except in `Drain`/`Hold`, so the bottleneck keeps
//! spreading them and a rise of the path shows as faster dispersion. A link rate is scale
//! invariant, so any share that meets a latency bound on a narrow path also keeps a stream
//! below its maximum on a path only somewhat wider (60 %: 12 Mbit/s → crossing p99 10.8 ms in
//! the simulator, but a 20 Mbit/s stream needs 75 % of a 30 Mbit/s path); that is why it is
//! not the default.
//!
//! A drop of the target by [`LARGE_DROP`] or more within [`LARGE_DROP_WINDOW`] is reported once as
//! [`BweEvent::LargeDrop`], with the number of frames known lost in that window so the caller asks
//! the encoder for a keyframe only when the client really lost pictures.
//!
//! No feedback for [`FEEDBACK_TIMEOUT`] while frames are sent halves `E` (once per timeout): the
//! path or the client went silent, and sending on at full rate into it only fills a queue.
//!
//! # Measured (`tests/congestion_estimator.rs`, on a simulated bottleneck: drop-tail queue of 50 ms, 10 ms each way,
//! frames ±10 % around the target at 60 fps, 20 % parity, the real [`super::pacing::Pacer`])
//!
//! - 12 Mbit/s, starting at 20: 95 % of the path used; p99 of the queue a frame's first
//!   datagram waits behind 8.1–10.9 ms (median 0) over 16 seeds (7.1–9.2 ms without the
//!   jitter floor's lift on a clean path, see *Jitter*); every frame decodable from 2 s.
//! - 12 → 30 → 8 → 30 Mbit/s: back at 20 Mbit/s ≈ 3.5 s after each rise; below 8 Mbit/s
//!   ≈ 0.2 s after the fall (frames flow again within 0.5 s; the fall is one `LargeDrop`).
//! - Two flows, 20 Mbit/s: within 30 % of each other 55 s after the second joins, for frames
//!   in lock step and a tenth, a quarter, half, three quarters and nine tenths of an interval
//!   apart (ignored diagnostic `fairness_sweep`, 16 seeds per phase). With frame sizes ±30 %
//!   (`BWE_JITTER=0.3`, closer to x264 than ±10 %) the worst seed per phase gets 0.33–0.62 of
//!   the other's rate (0.21–0.40 before frames were paced wherever the path limits the stream
//!   and a paced frame's last datagram entered the queue signal). With the real encoder the
//!   benchmark's two streams got 0.91–0.99 of each other over five runs (BENCHMARKS).
//! - 5 % iid loss with 20 % parity: the maximum is reached and held on an open path; a 12 Mbit/s
//!   bottleneck is used as without loss, with p99 queue under 15 ms.
//! - 30 ms each way, ±5 ms jitter (order kept), Gilbert-Elliott bursts on both directions
//!   (enter 2 % / leave 20 % and 1 % / 30 %), 20 % parity, no bottleneck: a 4 Mbit/s and a
//!   20 Mbit/s stream hold ≥ 90 % of their maximum from 3 s on (three seeds each; before the
//!   jitter floor and the delay evidence for loss, 4 Mbit/s fell to 1.5–2.5 Mbit/s within 10 s).
//!
//! Not modelled yet: keyframes many times a P-frame (they queue behind themselves and read as
//! over-use), cross traffic that fills queues (a loss-based TCP flow wins against any
//! delay-based controller), Wi-Fi aggregation (bursty delivery inflates the delivery rate).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::feedback::Feedback;
use super::wire::seq_diff;

mod control;
mod delay;
mod loss;
mod rate;
#[cfg(test)]
mod tests;

use control::LARGE_DROP_WINDOW;

use loss::*;
use rate::*;

/// Pacing rate relative to the estimate: a frame at full budget leaves within about two
/// thirds of its interval, and the bottleneck never sees more than a third of a frame queued
/// by our own pacing.
pub(crate) const PACING_GAIN: f64 = 1.5;

/// Outside a drain, frames are paced at the estimate only while the capacity measured at the
/// last over-use is below this share of the estimate's maximum: a bottleneck narrower than the
/// stream. One spurious over-use on a path with room (a keyframe burst, a stalled relay) is
/// measured at about the stream's full rate and does not spread every frame over two thirds
/// of its interval while the estimate climbs back (seconds, additively).
pub(crate) const PACE_BELOW_MAX: f64 = 0.85;

/// The shortest response time, and the one used before an RTT is known.
pub(crate) const MIN_RESPONSE_TIME: Duration = Duration::from_millis(100);

/// Response time = RTT + this (the feedback interval, the standing window and a margin).
pub(crate) const RESPONSE_MARGIN: Duration = Duration::from_millis(80);

/// Longest response time.
pub(crate) const MAX_RESPONSE_TIME: Duration = Duration::from_secs(1);

/// No feedback for this long while sending halves the estimate.
pub(crate) const FEEDBACK_TIMEOUT: Duration = Duration::from_millis(500);

/// The media share is measured over this many recent frames of at least
/// [`MEDIA_SHARE_MIN_DATA`] data shards.
pub(crate) const MEDIA_SHARE_FRAMES: usize = 60;

/// Frames of fewer data shards do not enter the media share. Their overhead (the parity
/// minimum, a header per datagram) is many times a full frame's, and says nothing about the
/// overhead at the target: an encoder at its minimum bitrate on a picture it cannot code
/// (x264 at 500 kbit/s on noise, with a small rate-control buffer) sends 20–50-byte skip
/// frames, each in one data and two parity datagrams. Measured from them, the share fell to
/// ~0.1, the target to a tenth of the estimate, which kept the encoder at its minimum: a trap
/// the stream never left (two streams through 20 Mbit/s: 0.2 against 17 Mbit/s).
pub(crate) const MEDIA_SHARE_MIN_DATA: u32 = 4;

/// Frames whose send record is kept for matching feedback: 17 s at 60 fps, 4 s at 240 fps.
pub(crate) const MAX_RECORDS: usize = 1024;

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
    /// Largest share of the path's rate (measured from how the bottleneck spreads a frame's
    /// datagrams, see [`LINK_WINDOW`]) the estimate may take; 1.0 = no cap beyond what the
    /// path carries without a standing queue. Below 1, each frame crosses the bottleneck in
    /// about that share of its interval (the rest of the interval is left free).
    pub link_share: f64,
}

impl Default for BweConfig {
    fn default() -> Self {
        BweConfig {
            min_bitrate_bps: 500_000,
            max_bitrate_bps: 20_000_000,
            start_bitrate_bps: 8_000_000,
            initial_media_share: 0.8,
            link_share: 1.0,
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
    /// The queue shrinks: the path has room.
    Underuse,
    /// Neither trend nor standing queue.
    Normal,
    /// The queue grows or stands: the stream exceeds the path.
    Overuse,
}

/// A snapshot of the estimator (for stats and the element message).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The state machine's state.
    pub state: BweState,
    /// The delay detector's latest verdict.
    pub signal: DelaySignal,
    /// What the path carries, wire bits per second (datagram bytes incl. parity and headers).
    pub estimate_bps: u64,
    /// The encoder's budget, media bits per second, within the configured bounds.
    pub target_bitrate_bps: u64,
    /// The pacer's rate, bits per second.
    pub pacing_rate_bps: u64,
    /// Whether to pace at [`Estimate::pacing_rate_bps`] now: the path has shown congestion and
    /// limits the stream (a queue stands or drains, or the target is below the maximum). See
    /// [`PACING_GAIN`].
    pub pace: bool,
    /// Standing queue delay.
    pub queue_delay: Duration,
    /// Queue delay gradient (s/s).
    pub delay_slope: f64,
    /// Latest delivery rate, wire bits per second (0 = not yet known).
    pub delivery_rate_bps: u64,
    /// Delivery rate at the last over-use (0 = none yet).
    pub capacity_bps: u64,
    /// The path's rate from how it spread recent frames (0 = not known, or the path has room).
    pub link_rate_bps: u64,
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
        /// The target before the fall, media bits per second.
        from_bps: u64,
        /// The target after it.
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
    /// (media bytes, wire bytes) of the last [`MEDIA_SHARE_FRAMES`] frames of at least
    /// [`MEDIA_SHARE_MIN_DATA`] data shards, and their sums.
    shares: VecDeque<(u64, u64)>,
    share_sums: (u64, u64),
    /// Per-second buckets of client arrival time: (bucket, minimum one-way delay µs).
    min_owd: VecDeque<(i64, i64)>,
    /// (client arrival µs, queue delay µs) of recent frames.
    samples: VecDeque<(i64, i64)>,
    /// |difference| of consecutive frames' queue samples (µs), the last [`JITTER_SAMPLES`].
    jitter_diffs: VecDeque<i64>,
    /// When the delay signal last showed a queue above the jitter floor (standing above the
    /// low threshold, or over-use).
    last_delay_evidence: Option<Instant>,
    /// (first arrival µs, last arrival µs, bytes) of recent frames.
    deliveries: VecDeque<(i64, i64, u64)>,
    /// Recent delivery rates (host time, bps), for the app-limited cap.
    delivery_rates: VecDeque<(Instant, f64)>,
    delivery_rate: Option<f64>,
    losses: VecDeque<LossEntry>,
    lost_frames: VecDeque<Instant>,
    /// (last arrival µs, bps, spread by the bottleneck) of recent frames: how fast the path
    /// took them (a lower bound when not spread).
    link_samples: VecDeque<(i64, f64, bool)>,
    /// The latest arrival (client µs) of any reported frame: the end of the link window.
    newest_arrival_us: Option<i64>,

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
    last_target: u64,
    drop_active: bool,
    events: VecDeque<BweEvent>,
}

fn micros(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

impl BandwidthEstimator {
    /// An estimator starting at `cfg`'s start rate at `now`.
    pub fn new(cfg: BweConfig, now: Instant) -> Self {
        let mut cfg = cfg;
        cfg.max_bitrate_bps = cfg.max_bitrate_bps.max(1);
        cfg.min_bitrate_bps = cfg.min_bitrate_bps.clamp(1, cfg.max_bitrate_bps);
        cfg.start_bitrate_bps = cfg
            .start_bitrate_bps
            .clamp(cfg.min_bitrate_bps, cfg.max_bitrate_bps);
        if !(cfg.link_share.is_finite() && cfg.link_share > 0.0 && cfg.link_share <= 1.0) {
            cfg.link_share = 1.0;
        }
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
            shares: VecDeque::new(),
            share_sums: (0, 0),
            min_owd: VecDeque::new(),
            samples: VecDeque::new(),
            jitter_diffs: VecDeque::new(),
            last_delay_evidence: None,
            deliveries: VecDeque::new(),
            delivery_rates: VecDeque::new(),
            delivery_rate: None,
            losses: VecDeque::new(),
            lost_frames: VecDeque::new(),
            link_samples: VecDeque::new(),
            newest_arrival_us: None,
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
            last_target: cfg.start_bitrate_bps,
            drop_active: false,
            events: VecDeque::new(),
        }
    }

    /// The configuration in use (after its bounds were sanitised).
    pub fn config(&self) -> &BweConfig {
        &self.cfg
    }

    /// Changes the bounds of the target bitrate (media bits per second), e.g. once the
    /// encoder's configured bitrate is known. The estimate is clamped into them at once; a
    /// change of bounds is not a drop ([`BweEvent::LargeDrop`] measures from the new target).
    pub fn set_bounds(&mut self, min_bitrate_bps: u64, max_bitrate_bps: u64) {
        self.cfg.max_bitrate_bps = max_bitrate_bps.max(1);
        self.cfg.min_bitrate_bps = min_bitrate_bps.clamp(1, self.cfg.max_bitrate_bps);
        let (lo, hi) = self.bounds();
        self.estimate = self.estimate.clamp(lo, hi);
        self.last_target = self.estimate().target_bitrate_bps;
        self.recent_targets.clear();
        self.drop_active = false;
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
        if sent.data_datagrams >= MEDIA_SHARE_MIN_DATA && sent.wire_bytes > 0 {
            if self.shares.len() >= MEDIA_SHARE_FRAMES
                && let Some((m, w)) = self.shares.pop_front()
            {
                self.share_sums.0 -= m;
                self.share_sums.1 -= w;
            }
            // Bounded so 60 of them never overflow the sums.
            let w = sent.wire_bytes.min(1 << 40);
            let m = sent.media_bytes.min(w);
            self.shares.push_back((m, w));
            self.share_sums.0 += m;
            self.share_sums.1 += w;
        }
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

    /// Media bytes ÷ wire bytes of the recent frames of [`MEDIA_SHARE_MIN_DATA`] data shards
    /// or more; of all recent frames while none was that large (a stream that only ever sent
    /// small frames pays their overhead); the configured initial share before any frame.
    fn media_share(&self) -> f64 {
        let (media, wire) = if self.shares.is_empty() {
            self.records
                .iter()
                .rev()
                .take(MEDIA_SHARE_FRAMES)
                .fold((0u64, 0u64), |(m, w), r| {
                    (
                        m.saturating_add(r.sent.media_bytes.min(r.sent.wire_bytes)),
                        w.saturating_add(r.sent.wire_bytes),
                    )
                })
        } else {
            self.share_sums
        };
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
                let mut owd = first.saturating_sub(send_us);
                // The last datagram's delay too, when it is known to be the last one sent (none
                // of the frame lost): a paced frame's last datagram leaves most of a frame
                // interval after its first, after another flow's frame burst has drained.
                if f.received >= sent.datagrams {
                    let last_send_us = micros(sent.last_send.saturating_duration_since(epoch));
                    owd = owd.min(last.saturating_sub(last_send_us));
                }
                self.on_arrival(first, owd, last, f.bytes);
                if f.received >= sent.datagrams && sent.datagrams >= LINK_MIN_DATAGRAMS {
                    let send_span = sent.last_send.saturating_duration_since(sent.first_send);
                    self.on_dispersion(first, last, f.bytes, f.received, send_span);
                }
            }
        }
        self.expire(now);
        if any {
            self.update_delivery_rate(now);
            self.control(now);
        }
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

    /// Start of the current feedback deadline: the newest of the last feedback, the last
    /// starvation cut and the start of the current run of sending.
    fn deadline_from(&self) -> Instant {
        let mut from = self.last_feedback.unwrap_or(self.epoch);
        for t in [self.last_starve_cut, self.sending_since]
            .into_iter()
            .flatten()
        {
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
            // With a link share below 1 frames leave as bursts except while a queue stands or
            // drains: how the bottleneck spreads them is the path's rate.
            pace: self.capacity.is_some_and(|c| {
                matches!(self.state, BweState::Drain | BweState::Hold)
                    || (self.cfg.link_share >= 1.0
                        && target < self.cfg.max_bitrate_bps
                        && c < PACE_BELOW_MAX * hi)
            }),
            queue_delay: Duration::from_micros(self.queue_us.max(0) as u64),
            delay_slope: self.slope,
            delivery_rate_bps: self.delivery_rate.map_or(0, |d| d as u64),
            capacity_bps: self.capacity.map_or(0, |c| c as u64),
            link_rate_bps: self.link_rate().map_or(0, |r| r as u64),
            loss,
            loss_budget,
            media_share: share,
        }
    }
}
