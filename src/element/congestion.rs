//! The sink's congestion control (issue 10): the `congestion-control`, `min-bitrate` and
//! `max-bitrate` properties, the `punktfunk-bandwidth` element message, and steering the
//! upstream encoder from the session's [`BandwidthUpdate`]s.
//!
//! - `none`: the session runs no estimator; pacing and bitrate are as the user set them.
//! - `report`: the estimator runs and `punktfunk-bandwidth` messages are posted; the encoder
//!   and the pacing are left alone (an application can steer its own encoder from them).
//! - `encoder` (default): as `report`, the pacing rate follows the estimate, and the upstream
//!   encoder's bitrate is set to the target (via [`super::encoder`]): never above the bitrate
//!   configured on the encoder when the stream started (nor `max-bitrate` when set), never
//!   below `min-bitrate`. An encoder that cannot be found or driven gets one warning; the
//!   messages still go out. With `encoder-buffer` (default 34: two frames at 60 fps), the
//!   encoder's rate-control buffer is bounded to that many milliseconds of its bitrate when the
//!   sink starts, so a keyframe is about twice a P-frame instead of 5–20 times (see
//!   [`super::encoder`]).
//!
//! The target already leaves room for FEC parity and headers (the estimator's media share).
//!
//! Owns: [`Steering`] (which encoder, its bounds, the one warning) and the message layout
//! (fields may be added, never renamed). Must never: block the receive thread (a property set
//! on the encoder is all it does), or set a bitrate outside `[min-bitrate, ceiling]`.

use gst::glib;
use gst::prelude::*;

use crate::protocol::congestion::BweState;
use crate::session::BandwidthUpdate;

use super::encoder::{EncoderControl, find_upstream_encoder};

/// Name of the element message with each bandwidth update.
pub(crate) const BANDWIDTH_NAME: &str = "punktfunk-bandwidth";

pub(crate) const DEFAULT_MIN_BITRATE: u64 = 500_000;
pub(crate) const DEFAULT_MAX_BITRATE: u64 = 0;
/// `encoder-buffer`: the encoder's rate-control buffer in milliseconds of its bitrate; 0 leaves
/// the encoder's own. On by default (two frames at 60 fps): with x264's own 600 ms buffer a
/// keyframe is 5–20 P-frames, overflows a narrow path's queue and reads as congestion (12 Mbit/s
/// bottleneck: 96–99 % of pictures shown, p99 70–75 ms against 100 % and ~30–40 ms bounded). It
/// was off while bounded, uniform frames broke the fairness between two streams (0.01–0.16);
/// that came from the media-share trap and unpaced frame bursts, both fixed (see
/// docs/BENCHMARKS.md, issue 10, third session).
pub(crate) const DEFAULT_ENCODER_BUFFER_MS: u32 = 34;

/// `link-share`: the largest share of the path's measured rate the stream may take, percent
/// (100 = as much as the path carries without a standing queue).
pub(crate) const DEFAULT_LINK_SHARE: u32 = 100;

/// The `congestion-control` property.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstPunktfunkCongestionControl")]
pub(crate) enum CongestionControl {
    #[enum_value(
        name = "None: no bandwidth estimation (fixed bitrate and pacing)",
        nick = "none"
    )]
    None = 0,
    #[enum_value(
        name = "Report: estimate the bandwidth and post punktfunk-bandwidth messages only",
        nick = "report"
    )]
    Report = 1,
    #[enum_value(
        name = "Encoder: also set the upstream encoder's bitrate and pace at the estimate",
        nick = "encoder"
    )]
    Encoder = 2,
}

pub(crate) const DEFAULT_CONGESTION_CONTROL: CongestionControl = CongestionControl::Encoder;

/// The estimator's state as the message and stats spell it.
pub(crate) fn state_name(s: Option<BweState>) -> &'static str {
    match s {
        None => "off",
        Some(BweState::Startup) => "startup",
        Some(BweState::Increase) => "increase",
        Some(BweState::Hold) => "hold",
        Some(BweState::Drain) => "drain",
    }
}

/// The `punktfunk-bandwidth` structure: `estimate` (wire bit/s), `target-bitrate` (media
/// bit/s), `encoder-bitrate` (what the encoder was set to, bit/s; 0 = not steered), `state`,
/// `rtt-us`, `loss` (fraction), `queue-delay-us`, `pacing-rate` (bit/s, 0 = automatic),
/// `keyframe` (a keyframe was asked for after a sharp fall with frames lost).
pub(crate) fn bandwidth_structure(u: &BandwidthUpdate, encoder_bps: u64) -> gst::Structure {
    gst::Structure::builder(BANDWIDTH_NAME)
        .field("estimate", u.estimate_bps)
        .field("target-bitrate", u.target_bitrate_bps)
        .field("encoder-bitrate", encoder_bps)
        .field("state", state_name(Some(u.state)))
        .field("rtt-us", u.rtt.as_micros() as u64)
        .field("loss", u.loss)
        .field("queue-delay-us", u.queue_delay.as_micros() as u64)
        .field("pacing-rate", u.pacing_rate_bps)
        .field("keyframe", u.keyframe)
        .build()
}

/// Which encoder the sink steers and within which bounds.
#[derive(Debug)]
pub(crate) struct Steering {
    mode: CongestionControl,
    min_bps: u64,
    max_bps: u64,
    buffer_ms: u32,
    encoder: Option<EncoderControl>,
    searched: bool,
    bounds_given: bool,
}

/// What [`Steering::find`] did to the encoder's rate-control buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BufferBounded {
    pub(crate) encoder: String,
    pub(crate) property: &'static str,
    pub(crate) before: u64,
    pub(crate) after: u64,
}

/// What [`Steering::attach`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attach {
    /// Nothing to do (congestion control off, or already searched).
    Nothing,
    /// An encoder was found: the session's bounds are `(min, max)`.
    Found { min_bps: u64, max_bps: u64 },
    /// No encoder we can drive: warn once; the bounds are `(min, max-bitrate)`.
    NotFound { min_bps: u64, max_bps: u64 },
}

impl Steering {
    pub(crate) fn new(mode: CongestionControl, min_bps: u64, max_bps: u64, buffer_ms: u32) -> Self {
        Steering {
            mode,
            min_bps,
            max_bps,
            buffer_ms,
            encoder: None,
            searched: false,
            bounds_given: false,
        }
    }

    /// Looks for the encoder upstream of `sinkpad` once the pad is linked (at start, so the
    /// encoder's rate-control buffer is bounded before it encodes its first frame; or at the
    /// caps, for a sink linked later) and, in `encoder` mode, bounds its buffer.
    pub(crate) fn find(&mut self, sinkpad: &gst::Pad) -> Option<BufferBounded> {
        if self.mode == CongestionControl::None || self.searched || sinkpad.peer().is_none() {
            return None;
        }
        self.searched = true;
        self.encoder = find_upstream_encoder(sinkpad).and_then(EncoderControl::new);
        if self.mode != CongestionControl::Encoder {
            return None;
        }
        let enc = self.encoder.as_mut()?;
        let (property, before, after) = enc.bound_buffer(u64::from(self.buffer_ms))?;
        Some(BufferBounded {
            encoder: enc.element().name().to_string(),
            property,
            before,
            after,
        })
    }

    pub(crate) fn mode(&self) -> CongestionControl {
        self.mode
    }

    /// The session's bitrate bounds from the encoder found (once per start; searches for it
    /// first if [`Steering::find`] has not).
    pub(crate) fn attach(&mut self, sinkpad: &gst::Pad) -> Attach {
        if self.mode == CongestionControl::None || self.bounds_given {
            return Attach::Nothing;
        }
        self.bounds_given = true;
        self.find(sinkpad);
        match &self.encoder {
            Some(enc) => {
                let mut max = enc.configured_bps();
                if self.max_bps > 0 {
                    max = max.min(self.max_bps);
                }
                Attach::Found {
                    min_bps: self.min_bps.min(max),
                    max_bps: max,
                }
            }
            None => Attach::NotFound {
                min_bps: self.min_bps,
                max_bps: self.max_bps,
            },
        }
    }

    /// The encoder found, if any.
    pub(crate) fn encoder_name(&self) -> Option<String> {
        self.encoder
            .as_ref()
            .map(|e| e.element().name().to_string())
    }

    /// Applies an update: sets the encoder's bitrate in `encoder` mode. Returns the encoder's
    /// bitrate now (bit/s; 0 when none is steered) and whether it changed.
    pub(crate) fn on_update(&mut self, u: &BandwidthUpdate) -> (u64, bool) {
        if self.mode != CongestionControl::Encoder {
            return (0, false);
        }
        let Some(enc) = self.encoder.as_mut() else {
            return (0, false);
        };
        match enc.set_bps(u.target_bitrate_bps, self.min_bps, self.max_bps) {
            Some(set) => (set, true),
            None => (enc.current_bps(), false),
        }
    }
}
