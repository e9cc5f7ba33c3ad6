//! Congestion control in the connection: the client's bandwidth feedback and the
//! host's bandwidth estimator, the pacing rate that follows it and the [`Event::Bandwidth`]
//! updates that steer the encoder.
//!
//! Client: every authenticated video datagram is recorded in a [`FeedbackBuilder`] (frame
//! index, UDP payload bytes, arrival instant); what it reports goes to the host as a sealed
//! [`Control::Feedback`], at the builder's pace (a message every ~25 ms while frames arrive).
//! Host: the driver reports each frame's real send times ([`Connection::on_frame_sent`]); the
//! [`BandwidthEstimator`] matches them with the feedback, and its estimate sets
//!
//! - the pacer's rate (`PACING_GAIN` × the estimate, in small chunks), when
//!   [`CongestionConfig::pace`] is set, the user left the pacing rate automatic, the path has
//!   shown congestion at least once, the path limits the stream now (a queue stands or
//!   drains, or the target is below the maximum and the last measured capacity well below it:
//!   `Estimate::pace`), and the maximum is known (something follows the estimate); otherwise
//!   the automatic pacer's short bursts cost nothing and keep open-path latency as it was;
//! - the target bitrate for the encoder, reported in [`Event::Bandwidth`] when it changes
//!   notably (state change, at least [`NOTABLE_CHANGE`] of the target, or the target reaching
//!   its minimum or maximum): a fall of
//!   [`URGENT_FALL`] or more at once, anything else at most every [`MIN_EVENT_INTERVAL`];
//! - a keyframe hint: after a large drop of the target ([`BweEvent::LargeDrop`]) only when
//!   frames were lost in it (otherwise the decoder lost nothing and a keyframe would only eat
//!   the smaller budget).
//!
//! FEC parity and headers fit inside the estimate: the target is the estimate times the media
//! share actually sent. While the estimator sees a growing queue (its `Drain` state), FEC by
//! target takes the loss as the queue's: no parity is raised for it and parity stays at most
//! the data (`AdaptiveFec::on_congestion`). Estimator and builder start afresh with every new session (a new peer
//! or a restart has a new path and new frame indices).
//!
//! Must never: act on feedback outside the current session (it arrives sealed in it), trust
//! feedback beyond the frames sent (the estimator ignores unknown frames), or block.

use std::time::{Duration, Instant};

use crate::protocol::congestion::{BandwidthEstimator, BweConfig, BweEvent, BweState, Estimate};
use crate::protocol::control::Control;
use crate::protocol::feedback::{Feedback, FeedbackBuilder};

use super::{Connection, Event, SealedFrame, Side};

/// A target change of this fraction (or a state change) is worth an [`Event::Bandwidth`].
pub(crate) const NOTABLE_CHANGE: f64 = 0.03;

/// A fall of the target by this fraction is reported at once; other changes wait for
/// [`MIN_EVENT_INTERVAL`] since the previous report.
pub(crate) const URGENT_FALL: f64 = 0.10;

/// Shortest interval between two [`Event::Bandwidth`] updates that are not urgent.
pub(crate) const MIN_EVENT_INTERVAL: Duration = Duration::from_millis(100);

/// Upper bound of the target when neither the encoder's bitrate nor a maximum is known
/// (media bits per second). The estimator's app-limited cap keeps the estimate near what is
/// really sent.
pub(crate) const UNKNOWN_MAX_BITRATE_BPS: u64 = 1_000_000_000;

/// What congestion control does on each side (a field of [`super::super::Config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CongestionConfig {
    /// Client: send bandwidth feedback. Host: run the estimator, report [`Event::Bandwidth`].
    pub enabled: bool,
    /// Host: the pacer's rate follows the estimate (only with an automatic pacing rate).
    pub pace: bool,
    /// Host: the target bitrate never goes below this (media bits per second).
    pub min_bitrate_bps: u64,
    /// Host: nor above this; 0 = not known yet (see [`Connection::set_bitrate_bounds`]).
    pub max_bitrate_bps: u64,
    /// Host: the target before any feedback; 0 = the maximum when known (a stream starts at
    /// the bitrate the user configured and backs off on congestion), else the estimator's
    /// default.
    pub start_bitrate_bps: u64,
    /// Host: the largest share of the path's measured rate the stream (media, parity and
    /// headers) may take, in percent (1..=100; 100 = as much as the path carries without a
    /// standing queue). See `BweConfig::link_share`.
    pub link_share_percent: u32,
}

impl Default for CongestionConfig {
    fn default() -> Self {
        CongestionConfig {
            enabled: true,
            pace: true,
            min_bitrate_bps: BweConfig::default().min_bitrate_bps,
            max_bitrate_bps: 0,
            start_bitrate_bps: 0,
            link_share_percent: 100,
        }
    }
}

/// A bandwidth update for the user (host): what the estimator thinks and what the encoder
/// should do.
#[derive(Debug, Clone, PartialEq)]
pub struct BandwidthUpdate {
    /// The estimator's state (hold, increase, drain).
    pub state: BweState,
    /// What the path carries, wire bits per second.
    pub estimate_bps: u64,
    /// The encoder's budget, media bits per second (FEC and headers already taken out).
    pub target_bitrate_bps: u64,
    /// The pacing rate in use (bits per second; 0 = automatic).
    pub pacing_rate_bps: u64,
    /// Standing queue delay at the bottleneck.
    pub queue_delay: Duration,
    /// Loss fraction over the estimator's loss window.
    pub loss: f64,
    /// Smoothed RTT (zero before the first measurement).
    pub rtt: Duration,
    /// The target fell sharply and the client lost frames in that fall: ask the encoder for a
    /// keyframe.
    pub keyframe: bool,
}

/// Congestion control state of one connection that both roles keep; the host's estimator and
/// [`HostCongestion`], and the client's feedback builder, live in their [`Side`].
#[derive(Default)]
pub(super) struct CongestionState {
    /// Session the estimator and builder belong to.
    session_id: Option<u32>,
    /// Feedback messages sent (client) or received (host).
    feedback_messages: u64,
}

/// Host: what applying the estimate needs besides the estimator (kept in the host's state).
pub(super) struct HostCongestion {
    min_bps: u64,
    max_bps: u64,
    /// When the last [`Event::Bandwidth`] went, with its target and state.
    last_event: Option<(Instant, u64, BweState)>,
    large_drops: u64,
    pacing_rate_bps: u64,
}

impl HostCongestion {
    pub(super) fn new(cfg: &CongestionConfig) -> Self {
        HostCongestion {
            min_bps: cfg.min_bitrate_bps,
            max_bps: cfg.max_bitrate_bps,
            last_event: None,
            large_drops: 0,
            pacing_rate_bps: 0,
        }
    }

    /// Whether congestion control paces frames at its estimate now (the path limits the
    /// stream).
    pub(super) fn paces(&self) -> bool {
        self.pacing_rate_bps != 0
    }

    /// The estimator's configuration for a new session.
    fn bwe_config(&self, cfg: &super::Config) -> BweConfig {
        let max = if self.max_bps > 0 {
            self.max_bps
        } else {
            UNKNOWN_MAX_BITRATE_BPS
        };
        let start = match (cfg.congestion.start_bitrate_bps, self.max_bps) {
            (0, 0) => BweConfig::default().start_bitrate_bps,
            (0, m) => m,
            (s, _) => s,
        };
        // Before the first frame: one parity shard per `fec%` data shards, plus headers.
        let fec = f64::from(cfg.fec_percent) / 100.0;
        BweConfig {
            min_bitrate_bps: self.min_bps,
            max_bitrate_bps: max,
            start_bitrate_bps: start,
            initial_media_share: 0.95 / (1.0 + fec),
            link_share: f64::from(cfg.congestion.link_share_percent.clamp(1, 100)) / 100.0,
        }
    }
}

impl Connection {
    fn congestion_enabled(&self) -> bool {
        self.cfg.congestion.enabled
    }

    /// Forgets the estimator and builder when the session changed (new peer, restart).
    fn congestion_session(&mut self, now: Instant) -> bool {
        let Some(id) = self.link.as_ref().map(|l| l.session_id) else {
            return false;
        };
        if self.cc.session_id == Some(id) {
            return true;
        }
        self.cc.session_id = Some(id);
        let cfg = &self.cfg;
        match &mut self.side {
            Side::Client(c) => {
                c.feedback = Some(FeedbackBuilder::new(now));
                c.feedback_at = None;
            }
            Side::Host(h) => {
                let bwe_config = h.congestion.bwe_config(cfg);
                h.congestion.last_event = None;
                h.congestion.pacing_rate_bps = 0;
                h.pacer.set_congestion_rate_bps(0);
                h.bwe = Some(BandwidthEstimator::new(bwe_config, now));
            }
        }
        true
    }
    /// Host: sets the bounds of the target bitrate (media bits per second; `max` 0 = unknown),
    /// e.g. when the encoder and its configured bitrate were found. Takes effect at once.
    pub fn set_bitrate_bounds(&mut self, min_bps: u64, max_bps: u64) {
        let Some(h) = self.side.host_mut() else {
            return;
        };
        h.congestion.min_bps = min_bps;
        h.congestion.max_bps = max_bps;
        let max = if max_bps > 0 {
            max_bps
        } else {
            UNKNOWN_MAX_BITRATE_BPS
        };
        if let Some(bwe) = h.bwe.as_mut() {
            bwe.set_bounds(min_bps, max);
        }
    }

    /// Host: the bandwidth estimate, when congestion control runs in a session.
    pub fn bandwidth_estimate(&self) -> Option<Estimate> {
        self.side
            .host()
            .and_then(|h| h.bwe.as_ref())
            .map(|b| b.estimate())
    }

    /// Host: the driver reports when `frame`'s datagrams really left: the first handed to the
    /// socket at `first_send`, the last at `last_send` (after the pacing sleeps). Call it for
    /// every frame sent, in order, at `now` (after the send).
    pub fn on_frame_sent(
        &mut self,
        frame: &SealedFrame,
        first_send: Instant,
        last_send: Instant,
        now: Instant,
    ) {
        let Some(host) = self.side.host_mut() else {
            return;
        };
        // Audio sent since the previous frame loaded the path too; it is never throttled, so
        // the video's budget is what makes room for it.
        let audio_bytes = host.audio.take_wire_bytes();
        let (trailing, trailing_bytes) =
            self.send_trailing_parity(frame.datagrams().frame_index(), now);
        if !self.congestion_enabled() {
            return;
        }
        if !self.congestion_session(now) {
            return;
        }
        let d = frame.datagrams();
        let sent = crate::protocol::congestion::SentFrame {
            first_send,
            last_send: last_send.max(first_send),
            // The parity rows older frames keep behind this one leave with it: they load the
            // path as its own parity would (and keep the media share honest).
            datagrams: (d.len() + trailing) as u32,
            data_datagrams: d.data_count() as u32,
            wire_bytes: (d.wire_bytes() + trailing_bytes) as u64 + audio_bytes,
            media_bytes: frame.payload_bytes() as u64,
        };
        if let Some(bwe) = self.side.host_mut().and_then(|h| h.bwe.as_mut()) {
            bwe.on_frame_sent(d.frame_index(), sent, now);
        }
    }

    /// Host: a feedback message from the client.
    pub(super) fn on_feedback(&mut self, fb: Feedback, now: Instant) {
        self.cc.feedback_messages += 1;
        if !self.congestion_enabled() || !self.congestion_session(now) {
            return;
        }
        let rtt = self.srtt;
        if let Some(bwe) = self.side.host_mut().and_then(|h| h.bwe.as_mut()) {
            if let Some(r) = rtt {
                bwe.set_rtt(r);
            }
            bwe.on_feedback(&fb, now);
        }
        self.after_estimate(now);
    }

    /// Applies the estimate: pacing rate, events.
    fn after_estimate(&mut self, now: Instant) {
        let Some(h) = self.side.host_mut() else {
            return;
        };
        let Some(bwe) = h.bwe.as_mut() else {
            return;
        };
        let mut keyframe = false;
        let mut large = false;
        while let Some(BweEvent::LargeDrop { frames_lost, .. }) = bwe.poll_event() {
            large = true;
            keyframe |= frames_lost > 0;
        }
        let e = bwe.estimate();
        let bounds = (bwe.config().min_bitrate_bps, bwe.config().max_bitrate_bps);
        // Loss with a growing queue is the queue's: FEC does not answer it with more parity.
        let congested = e.state == BweState::Drain;
        h.fec.on_congestion(congested, now);
        let cc = &mut h.congestion;
        if large {
            cc.large_drops += 1;
        }
        // Pace at the estimate only where the path limits the stream (`Estimate::pace`: a queue
        // stands or drains, or the target is below the maximum). On a clean path the automatic
        // pacer's short bursts cost nothing, while pacing at `PACING_GAIN` × the estimate
        // spreads every frame over two thirds of its interval — measured on a clean 50 Mbit/s
        // path after one keyframe burst had read as a queue: p50 10.8 ms instead of 2.7 ms.
        // At a bottleneck the spread costs little (the bottleneck serialises the frame
        // anyway) and keeps our frame from standing as one burst in front of another flow's.
        // Only while something follows the estimate: without a known maximum (no encoder found,
        // no `max-bitrate`: an app source nobody steers) the stream keeps its rate whatever the
        // estimate, and pacing it at the estimate would only spread every frame (synthetic
        // 50 Mbit/s through Gilbert-Elliott loss: p99 11.3 ms paced in `Hold`).
        let limited = cc.max_bps > 0 && e.pace;
        let pace = self.cfg.congestion.pace && self.cfg.pacing.rate_bps == 0 && limited;
        let rate = if pace { e.pacing_rate_bps } else { 0 };
        if rate != cc.pacing_rate_bps {
            cc.pacing_rate_bps = rate;
            h.pacer.set_congestion_rate_bps(rate);
        }
        let notable = match cc.last_event {
            None => true,
            Some((at, target, state)) => {
                let change = (e.target_bitrate_bps as f64 - target as f64) / target.max(1) as f64;
                let urgent = change <= -URGENT_FALL;
                let due = now.saturating_duration_since(at) >= MIN_EVENT_INTERVAL;
                // Reaching a bound is always worth saying: an encoder left 2 % below its
                // configured bitrate would stay there.
                let at_bound = target != e.target_bitrate_bps
                    && (e.target_bitrate_bps == bounds.0 || e.target_bitrate_bps == bounds.1);
                urgent || (due && (state != e.state || change.abs() >= NOTABLE_CHANGE || at_bound))
            }
        };
        if large || notable {
            cc.last_event = Some((now, e.target_bitrate_bps, e.state));
            let update = BandwidthUpdate {
                state: e.state,
                estimate_bps: e.estimate_bps,
                target_bitrate_bps: e.target_bitrate_bps,
                pacing_rate_bps: rate,
                queue_delay: e.queue_delay,
                loss: e.loss,
                rtt: self.srtt.unwrap_or_default(),
                keyframe,
            };
            self.events.push_back(Event::Bandwidth(update));
        }
    }

    /// Client: an authenticated video datagram of `wire_len` bytes with `body` arrived.
    pub(super) fn note_video_arrival(&mut self, body: &[u8], wire_len: usize, now: Instant) {
        if !self.congestion_enabled() || !self.congestion_session(now) {
            return;
        }
        let Some(index) = body.get(..4) else {
            return;
        };
        let mut frame_index = u32::from_be_bytes([index[0], index[1], index[2], index[3]]);
        // A trailing parity row left behind the next frame and counts with it, as the host
        // counted it (`on_frame_sent`).
        if crate::protocol::media::packetizer::is_trailing_row(body) {
            frame_index = frame_index.wrapping_add(1);
        }
        if let Some(b) = self.side.client_mut().and_then(|c| c.feedback.as_mut()) {
            b.on_datagram(frame_index, wire_len, now);
        }
        self.send_feedback(now);
    }

    /// Client: sends the feedback that is due.
    fn send_feedback(&mut self, now: Instant) {
        let mut out = Vec::new();
        if let Some(c) = self.side.client_mut()
            && let Some(b) = c.feedback.as_mut()
        {
            while let Some(fb) = b.poll_feedback(now) {
                out.push(fb);
            }
            c.feedback_at = b.poll_timeout(now);
        }
        for fb in out {
            self.cc.feedback_messages += 1;
            self.send_control(&Control::Feedback(fb));
        }
    }

    /// The next congestion-control deadline, if any.
    pub(super) fn congestion_timeout(&self) -> Option<Instant> {
        if !self.congestion_enabled() || self.link.is_none() {
            return None;
        }
        match &self.side {
            Side::Client(c) => c.feedback_at,
            Side::Host(h) => h.bwe.as_ref().and_then(|b| b.poll_timeout()),
        }
    }

    /// Runs the congestion-control timers due at `now`.
    pub(super) fn handle_congestion_timeout(&mut self, now: Instant) {
        if self.congestion_timeout().is_none_or(|t| t > now) {
            return;
        }
        match &mut self.side {
            Side::Client(_) => self.send_feedback(now),
            Side::Host(h) => {
                if let Some(b) = h.bwe.as_mut() {
                    b.handle_timeout(now);
                }
                self.after_estimate(now);
            }
        }
    }

    /// Fills the congestion-control fields of `s`.
    pub(super) fn congestion_stats(&self, s: &mut super::Stats) {
        s.feedback_messages = self.cc.feedback_messages;
        if let Some(h) = self.side.host() {
            s.bwe_large_drops = h.congestion.large_drops;
            s.bwe_pacing_rate_bps = h.congestion.pacing_rate_bps;
        }
        if let Some(e) = self.bandwidth_estimate() {
            s.bwe_state = Some(e.state);
            s.bwe_estimate_bps = e.estimate_bps;
            s.bwe_target_bitrate_bps = e.target_bitrate_bps;
            s.bwe_queue_delay_us = e.queue_delay.as_micros() as u64;
            s.bwe_delivery_rate_bps = e.delivery_rate_bps;
            s.bwe_link_rate_bps = e.link_rate_bps;
            s.bwe_loss = e.loss;
        }
    }
}
