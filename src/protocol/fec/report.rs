//! The client's loss report: the one message that carries what the client saw of the host's
//! datagrams to the host, every report interval (control type `LossReport`, `docs/PROTOCOL.md`
//! §5.2).
//!
//! One [`LossReport`] goes from the client's counters and loss estimator (`lossmodel`) through
//! the wire to the host's FEC plan (`AdaptiveFec::on_report` in `adaptive`): the cumulative
//! counters (what the `adaptive` share and the host's stats read, with the stream info
//! generation the host checks) and the loss model over a sliding window (what `target` plans
//! parity from). They travel
//! together because they describe the same datagrams at the same instant, so the host never
//! plans from one half of an observation.
//!
//! The bandwidth feedback ([`crate::protocol::feedback::Feedback`]) stays a message of its own:
//! it is a congestion signal, not a loss description. It carries per-frame arrival times for the
//! estimator's delay trend, goes every ~25 ms and only while video arrives, and its losses are
//! per frame against what the host sent (queue overflow to answer with a lower rate), where this
//! report's are per packet number over a window (the path's loss pattern to answer with parity).
//! Merging them would either slow the delay signal to the report interval or send the loss
//! window four times as often.
//!
//! This module only lays out the bytes: it never reads a clock, never decides when a report is
//! due, and never trusts a decoded report (the model's counts are checked against each other).

use crate::protocol::fec::lossmodel::{LOSS_MODEL_LEN, LossModelReport};
use crate::protocol::wire::{Reader, WireError, Writer};

/// What the client reports about the host → client datagrams, about every 100 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LossReport {
    /// Datagrams received and authenticated from the host (cumulative, this session).
    pub packets_received: u64,
    /// Datagrams the host sent that never arrived (gaps in the packet numbers; cumulative).
    pub packets_lost: u64,
    /// Data shards rebuilt by FEC (cumulative).
    pub packets_recovered: u64,
    /// Access units that could not be delivered (cumulative).
    pub frames_lost: u64,
    /// Access units delivered whole (cumulative).
    pub frames_delivered: u64,
    /// Generation of the stream info the client holds (0 = none), so the host can resend it.
    pub info_generation: u32,
    /// The loss pattern over the last report intervals (counts, runs, run lengths).
    pub model: LossModelReport,
}

/// Encoded size of a [`LossReport`] (without the control type byte).
pub const LOSS_REPORT_LEN: usize = 5 * 8 + 4 + LOSS_MODEL_LEN;

impl LossReport {
    /// Appends the report's body: the counters, then the loss model.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.u64(self.packets_received)
            .u64(self.packets_lost)
            .u64(self.packets_recovered)
            .u64(self.frames_lost)
            .u64(self.frames_delivered)
            .u32(self.info_generation);
        self.model.encode(w);
    }

    /// Reads a body written by [`Self::encode`]; the model's counts must agree with each other.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(LossReport {
            packets_received: r.u64()?,
            packets_lost: r.u64()?,
            packets_recovered: r.u64()?,
            frames_lost: r.u64()?,
            frames_delivered: r.u64()?,
            info_generation: r.u32()?,
            model: LossModelReport::decode(r)?,
        })
    }
}
