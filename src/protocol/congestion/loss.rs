//! Loss over the loss window, and the share of it that is not congestion.
//!
//! This part owns the loss window of [`BandwidthEstimator`]: datagrams sent, lost and parity per
//! reported frame. It never decides whether loss is congestion (that is [`super::control`], with
//! the delay evidence); it only says how much was lost and how much the parity sent repairs.

use super::BandwidthEstimator;
use std::time::{Duration, Instant};

/// Bound of the loss window's entries (memory only; its time span bounds it in practice).
pub(super) const MAX_LOSS_ENTRIES: usize = 1024;

/// Loss is measured over this window of feedback.
pub(crate) const LOSS_WINDOW: Duration = Duration::from_millis(500);

/// Loss below this fraction is never congestion (as GCC's 2 %).
pub(crate) const LOSS_FLOOR: f64 = 0.02;

/// The loss budget is this fraction of the parity share sent.
pub(crate) const LOSS_BUDGET_OF_PARITY: f64 = 0.5;

/// Fewest datagrams in the loss window before a loss fraction is trusted.
pub(crate) const LOSS_MIN_DATAGRAMS: u64 = 50;

#[derive(Debug, Clone, Copy)]
pub(super) struct LossEntry {
    pub(super) at: Instant,
    pub(super) sent: u64,
    pub(super) lost: i64,
    pub(super) parity: u64,
}

impl BandwidthEstimator {
    /// Parity datagrams ÷ datagrams sent over the loss window (at least [`LOSS_FLOOR`]).
    pub(super) fn parity_share(&self) -> f64 {
        let (sent, parity) = self
            .losses
            .iter()
            .fold((0u64, 0u64), |(s, p), e| (s + e.sent, p + e.parity));
        if sent == 0 {
            return LOSS_FLOOR;
        }
        (parity as f64 / sent as f64).max(LOSS_FLOOR)
    }

    /// (loss fraction, loss budget) over the loss window.
    pub(super) fn loss(&self) -> (f64, f64) {
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

    pub(super) fn push_loss(&mut self, e: LossEntry) {
        if self.losses.len() >= MAX_LOSS_ENTRIES {
            self.losses.pop_front();
        }
        self.losses.push_back(e);
    }
}
