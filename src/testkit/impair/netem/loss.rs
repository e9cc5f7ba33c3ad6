//! Loss models: none, independent (iid), Gilbert-Elliott bursts and trace-driven.

use std::sync::Arc;
use std::time::Duration;

use super::trace::{LossTrace, TraceCursor};
use crate::testkit::rng::{Rng, clamp_prob};

/// How a flow's datagrams are lost.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum LossModel {
    /// Nothing is lost.
    #[default]
    None,
    /// Each datagram is lost independently with this probability.
    Iid(f64),
    /// A two-state Markov chain (Gilbert-Elliott): in the good state a datagram is lost with
    /// `loss_good`, in the bad state with `loss_bad`; after each datagram the state moves
    /// good → bad with `p_good_to_bad` (often called *p*) and bad → good with `p_bad_to_good`
    /// (*r*). Every flow starts in the good state.
    GilbertElliott {
        /// Probability of moving good → bad after a datagram (*p*).
        p_good_to_bad: f64,
        /// Probability of moving bad → good after a datagram (*r*).
        p_bad_to_good: f64,
        /// Loss probability in the good state.
        loss_good: f64,
        /// Loss probability in the bad state.
        loss_bad: f64,
    },
    /// Per-packet fates replayed from a trace (see [`LossTrace`]), looping.
    Trace(Arc<LossTrace>),
}

impl LossModel {
    /// The classic Gilbert model with transition probabilities `p` (good → bad) and `r`
    /// (bad → good): everything in the bad state is lost, nothing in the good state. Mean loss
    /// is `p / (p + r)`, mean burst length `1 / r`. (The loss tests' path: `gilbert(0.01, 0.3)`,
    /// ≈ 3.2 % loss in bursts of 3.3 on average.)
    pub fn gilbert(p: f64, r: f64) -> Self {
        LossModel::GilbertElliott {
            p_good_to_bad: p,
            p_bad_to_good: r,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// A burst model with average loss `loss_rate` (0..1) in bursts of `mean_burst_len`
    /// consecutive datagrams on average (≥ 1): every datagram in the bad state is lost, none in
    /// the good state, `p_bad_to_good = 1 / mean_burst_len` and `p_good_to_bad` is chosen so that
    /// the stationary loss equals `loss_rate`. Inputs out of range are clamped (a loss rate too
    /// high for the burst length saturates `p_good_to_bad` at 1); NaN counts as 0 loss / burst 1.
    pub fn bursts(loss_rate: f64, mean_burst_len: f64) -> Self {
        let loss = clamp_prob(loss_rate);
        let burst = if mean_burst_len.is_nan() {
            1.0
        } else {
            mean_burst_len.max(1.0)
        };
        if loss >= 1.0 {
            return LossModel::Iid(1.0);
        }
        let r = 1.0 / burst;
        LossModel::gilbert((loss * r / (1.0 - loss)).min(1.0), r)
    }

    /// A trace-driven model.
    pub fn trace(trace: LossTrace) -> Self {
        LossModel::Trace(Arc::new(trace))
    }

    /// The long-run fraction of datagrams this model loses.
    pub fn mean_loss(&self) -> f64 {
        match self {
            LossModel::None => 0.0,
            LossModel::Iid(p) => clamp_prob(*p),
            LossModel::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let (gb, bg) = (clamp_prob(*p_good_to_bad), clamp_prob(*p_bad_to_good));
                let bad = if gb + bg > 0.0 { gb / (gb + bg) } else { 0.0 };
                bad * clamp_prob(*loss_bad) + (1.0 - bad) * clamp_prob(*loss_good)
            }
            LossModel::Trace(t) => t.mean_loss(),
        }
    }
}

/// One flow's loss state: the Gilbert-Elliott state or the trace position.
#[derive(Debug, Clone, Default)]
pub(crate) struct LossState {
    bad: bool,
    cursor: TraceCursor,
}

impl LossState {
    /// The fate of the next datagram: `None` = lost, `Some(extra delay)` = it goes on (the extra
    /// delay is non-zero only for traces that ask for it).
    pub(crate) fn next(&mut self, model: &LossModel, rng: &mut Rng) -> Option<Duration> {
        let lost = match model {
            LossModel::None => false,
            LossModel::Iid(p) => rng.chance(*p),
            LossModel::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let lost = rng.chance(if self.bad { *loss_bad } else { *loss_good });
                if self.bad {
                    if rng.chance(*p_bad_to_good) {
                        self.bad = false;
                    }
                } else if rng.chance(*p_good_to_bad) {
                    self.bad = true;
                }
                lost
            }
            LossModel::Trace(t) => return self.cursor.next(t),
        };
        (!lost).then_some(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean loss and mean burst length of `n` decisions.
    fn measure(model: &LossModel, seed: u64, n: usize) -> (f64, f64) {
        let mut rng = Rng::new(seed);
        let mut st = LossState::default();
        let (mut lost, mut bursts, mut prev) = (0usize, 0usize, false);
        for _ in 0..n {
            let l = st.next(model, &mut rng).is_none();
            lost += usize::from(l);
            bursts += usize::from(l && !prev);
            prev = l;
        }
        (lost as f64 / n as f64, lost as f64 / bursts.max(1) as f64)
    }

    #[test]
    fn iid_rate_within_tolerance_over_1e5() {
        for (p, seed) in [(0.01, 1u64), (0.05, 2), (0.10, 3), (0.20, 4)] {
            let (loss, burst) = measure(&LossModel::Iid(p), seed, 100_000);
            // 4 standard deviations of a binomial mean over 1e5.
            let sd = (p * (1.0 - p) / 1e5).sqrt();
            assert!((loss - p).abs() < 4.0 * sd, "p {p}: {loss}");
            // Runs of independent losses have mean length 1 / (1 - p).
            assert!(
                (burst - 1.0 / (1.0 - p)).abs() < 0.05,
                "p {p}: burst {burst}"
            );
        }
    }

    #[test]
    fn gilbert_elliott_matches_p_r_and_burst_constructor() {
        let issue8 = LossModel::gilbert(0.01, 0.3);
        assert!((issue8.mean_loss() - 0.01 / 0.31).abs() < 1e-12);
        for (model, rate, burst, seed) in [
            (issue8, 0.01 / 0.31, 1.0 / 0.3, 21u64),
            (LossModel::bursts(0.03, 3.0), 0.03, 3.0, 22),
            (LossModel::bursts(0.10, 5.0), 0.10, 5.0, 23),
            (LossModel::bursts(0.05, 1.0), 0.05, 1.0, 24),
        ] {
            assert!((model.mean_loss() - rate).abs() < 1e-12);
            let (loss, mean_burst) = measure(&model, seed, 200_000);
            assert!((loss - rate).abs() < rate * 0.12, "{model:?}: loss {loss}");
            assert!(
                (mean_burst - burst).abs() < burst * 0.08 + 0.05,
                "{model:?}: burst {mean_burst}"
            );
        }
    }

    #[test]
    fn gilbert_elliott_with_partial_loss_in_each_state() {
        let m = LossModel::GilbertElliott {
            p_good_to_bad: 0.05,
            p_bad_to_good: 0.2,
            loss_good: 0.01,
            loss_bad: 0.5,
        };
        // Stationary: bad 0.2 of the time → 0.2 · 0.5 + 0.8 · 0.01 = 0.108.
        assert!((m.mean_loss() - 0.108).abs() < 1e-12);
        let (loss, _) = measure(&m, 5, 100_000);
        assert!((loss - 0.108).abs() < 0.01, "{loss}");
    }

    #[test]
    fn bursts_constructor_edges_do_not_panic() {
        for (r, b) in [
            (0.0, 3.0),
            (1.0, 3.0),
            (2.0, 0.0),
            (-1.0, -1.0),
            (f64::NAN, f64::NAN),
            (0.9, 1.0),
            (0.5, f64::INFINITY),
        ] {
            let l = LossModel::bursts(r, b).mean_loss();
            assert!((0.0..=1.0).contains(&l), "{r} {b} -> {l}");
        }
        assert_eq!(LossModel::bursts(1.0, 3.0).mean_loss(), 1.0);
        assert_eq!(LossModel::bursts(0.0, 3.0).mean_loss(), 0.0);
        let (loss, _) = measure(&LossModel::bursts(1.0, 3.0), 1, 1000);
        assert_eq!(loss, 1.0);
    }

    #[test]
    fn trace_replays_exactly() {
        let t = LossModel::trace(LossTrace::parse("deliver*3\ndrop\ndeliver +7").unwrap());
        assert!((t.mean_loss() - 0.2).abs() < 1e-12);
        let mut rng = Rng::new(0);
        let mut st = LossState::default();
        let got: Vec<_> = (0..10).map(|_| st.next(&t, &mut rng)).collect();
        let z = Some(Duration::ZERO);
        let late = Some(Duration::from_micros(7));
        assert_eq!(got, vec![z, z, z, None, late, z, z, z, None, late]);
    }
}
