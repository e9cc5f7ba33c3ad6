//! The state only one role has: a host's frames, FEC, pacing, audio out and answers to the
//! client, or a client's reassembly, audio in, input queue and requests. A [`Connection`](super::Connection) holds
//! exactly one [`Side`], so client state never exists on a host and a host path gets its state
//! by matching. Must never: hold state both roles use (that stays on the connection).

use std::time::Instant;

use crate::protocol::congestion::BandwidthEstimator;
use crate::protocol::control::StreamInfo;
use crate::protocol::fec::adaptive::AdaptiveFec;
use crate::protocol::fec::coder::ReedSolomon8;
use crate::protocol::feedback::FeedbackBuilder;
use crate::protocol::input::{InputReceiver, InputSender};
use crate::protocol::media::reassembler::Reassembler;
use crate::protocol::security::handshake::Role;
use crate::protocol::time::pacing::Pacer;

use super::super::Config;
use super::{audio, congestion, frame_clock, guard, keyframe, repair, stall};

/// Host-only state.
pub(super) struct HostState {
    pub(super) frame_index: u32,
    pub(super) fec: AdaptiveFec,
    pub(super) pacer: Pacer,
    pub(super) input_rx: InputReceiver,
    pub(super) stream_info: Option<StreamInfo>,
    /// The stream info goes again after the session's first frame (`host`).
    pub(super) repeat_info: bool,
    /// Repair history and loss-model feed (`repair`).
    pub(super) repair: repair::HostRepair,
    /// Frames sent in the current session (reported to the client with every keep-alive).
    pub(super) frames_in_session: u64,
    /// The count last sent in a `SendProgress`.
    pub(super) frames_reported: u64,
    /// Keyframes sent and asked for, to coalesce requests (`keyframe`).
    pub(super) keyframes: keyframe::KeyframeAnswers,
    /// The bandwidth estimator of the current session (`congestion`; `None` while it is off).
    pub(super) bwe: Option<BandwidthEstimator>,
    /// Bitrate bounds, pacing rate and the last bandwidth event (`congestion`).
    pub(super) congestion: congestion::HostCongestion,
    /// The audio stream out (`audio`).
    pub(super) audio: audio::HostAudio,
    /// Throttles on keyframe requests and input events (`guard`).
    pub(super) throttles: guard::HostThrottles,
}

/// Client-only state.
pub(super) struct ClientState {
    pub(super) reassembler: Reassembler,
    pub(super) input_tx: InputSender,
    pub(super) last_loss_report: Instant,
    pub(super) last_keyframe_request: Option<Instant>,
    /// The keyframe request in flight and what it names (`keyframe`).
    pub(super) keyframe: keyframe::KeyframeAsk,
    /// Generation of the stream info handed out last (0 = none).
    pub(super) info_generation: u32,
    /// Loss model and repair requests (`repair`).
    pub(super) repair: repair::Repairs,
    /// Video stopped while the host says it sends (`stall`).
    pub(super) stall: stall::StallWatch,
    /// The bandwidth feedback of the current session (`congestion`; `None` while it is off).
    pub(super) feedback: Option<FeedbackBuilder>,
    /// When the feedback builder wants to be polled again.
    pub(super) feedback_at: Option<Instant>,
    /// The FEC share this configuration plans before any loss report, reported in
    /// `Stats::fec_percent` (a client sends no video, so it never changes).
    pub(super) fec_percent: u8,
    /// The audio stream in (`audio`).
    pub(super) audio: audio::ClientAudio,
    /// The host's clock offset and the frame ages (`frame_clock`).
    pub(super) clock: frame_clock::ClientClock,
}

/// One end's role and the state only that role has.
pub(super) enum Side {
    Host(Box<HostState>),
    Client(Box<ClientState>),
}

impl Side {
    /// The state of `config.role`, fresh at `now`.
    pub(super) fn new(config: &Config, stream_info: Option<StreamInfo>, now: Instant) -> Side {
        match config.role {
            Role::Host => Side::Host(Box::new(HostState {
                frame_index: 0,
                fec: AdaptiveFec::new(config.fec_mode, config.fec_percent, 100)
                    .with_target(config.fec_target),
                pacer: Pacer::new(config.pacing),
                input_rx: InputReceiver::new(),
                stream_info,
                repeat_info: false,
                repair: repair::HostRepair::new(config.repair_history, now),
                frames_in_session: 0,
                frames_reported: 0,
                keyframes: Default::default(),
                bwe: None,
                congestion: congestion::HostCongestion::new(&config.congestion),
                audio: Default::default(),
                throttles: guard::HostThrottles::new(now),
            })),
            Role::Client => Side::Client(Box::new(ClientState {
                reassembler: Reassembler::new(config.reassembler, Box::new(ReedSolomon8::new())),
                input_tx: InputSender::new(config.input_queue),
                last_loss_report: now,
                last_keyframe_request: None,
                keyframe: Default::default(),
                info_generation: 0,
                repair: repair::Repairs::new(),
                stall: stall::StallWatch::default(),
                feedback: None,
                feedback_at: None,
                clock: Default::default(),
                fec_percent: AdaptiveFec::new(config.fec_mode, config.fec_percent, 100)
                    .with_target(config.fec_target)
                    .wire_percent(),
                audio: Default::default(),
            })),
        }
    }

    pub(super) fn host(&self) -> Option<&HostState> {
        match self {
            Side::Host(h) => Some(h),
            Side::Client(_) => None,
        }
    }

    pub(super) fn host_mut(&mut self) -> Option<&mut HostState> {
        match self {
            Side::Host(h) => Some(h),
            Side::Client(_) => None,
        }
    }

    pub(super) fn client(&self) -> Option<&ClientState> {
        match self {
            Side::Client(c) => Some(c),
            Side::Host(_) => None,
        }
    }

    pub(super) fn client_mut(&mut self) -> Option<&mut ClientState> {
        match self {
            Side::Client(c) => Some(c),
            Side::Host(_) => None,
        }
    }
}
