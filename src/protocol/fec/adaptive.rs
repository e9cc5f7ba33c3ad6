//! The host's FEC controller: how much parity each block gets, from the client's reports.
//!
//! Three modes ([`FecMode`]): `Fixed` (the user's `fec-percent`), `Adaptive` (a share raised
//! from the loss fraction of the [`LossReport`]s' counters) and `Target` (per block size, the
//! least parity that keeps the probability that a block cannot be rebuilt under a target, from
//! the reports' loss model — see [`TargetConfig`] and `docs/PROTOCOL.md` §9). Every mode yields
//! a [`ParityTable`] (`m` per block size `k`) for the packetizer. A report comes in whole
//! through `AdaptiveFec::on_report`.
//!
//! This module owns the policy — raise at once when loss appears, lower slowly while the link
//! is clean, stay within the floor and ceiling. It never reads a clock (report arrival times
//! are arguments), never trusts report order (reports travel over a lossy link and may be lost,
//! duplicated or reordered) and never encodes anything.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::protocol::fec::coder::{
    MAX_DATA_SHARDS_PER_BLOCK, MAX_SHARDS_PER_BLOCK, MAX_TRAILING_K, MIN_PARITY, ParityTable,
    trailing_parity,
};
use crate::protocol::fec::lossmodel::{FailureTable, GilbertElliott, LossModelReport};
use crate::protocol::fec::repair::RepairMargin;
use crate::protocol::fec::report::LossReport;

/// The span of recent reports the loss fraction is measured over. The client reports about
/// every 100 ms, so this is about five reports: short enough to react within a frame or two
/// of a burst, long enough that one lost report does not read as a clean link.
pub(crate) const LOSS_WINDOW: Duration = Duration::from_millis(500);

/// Granularity of the share actually used for packetizing (see [`AdaptiveFec::wire_percent`]).
pub(crate) const ADAPTIVE_STEP: u8 = 5;

/// The share is lowered by at most one percentage point per this much time of clean reports.
pub(crate) const LOWER_STEP_INTERVAL: Duration = Duration::from_millis(500);

/// How much headroom the raise gives: `ceil(RAISE_FACTOR × loss% + RAISE_MARGIN)`.
const RAISE_FACTOR: u128 = 3;
const RAISE_MARGIN: u128 = 5;

/// Bounds the report window's memory if reports arrive in a tight loop.
const MAX_WINDOW_REPORTS: usize = 64;

/// Default block failure target of [`FecMode::Target`]. With deadline-bounded repair behind
/// FEC, a block that FEC cannot rebuild costs one repair round trip, not a frame; every target
/// from 1e-4 to 1e-2 met the ≥ 99.9 % delivery goal at 10 % and 20 % iid and Gilbert-Elliott
/// bursts in the sweep of `tests/loss_repair.rs` (`target_sweep`). 1e-3 rather than 1e-2:
/// with a real encoder at 20 % loss, 1e-2 left 1.4 % of frames to repair, which set the p99
/// (+2.9 ms over the lossless run, RTT + 2 ms allowed); 1e-3 repaired 0.2 % at the same
/// overhead (repair datagrams are not free either) and kept the p99 at the lossless run's
/// (see docs/BENCHMARKS.md).
pub(crate) const DEFAULT_TARGET: f64 = 1e-3;

/// Failure probability a repair answer is planned for: the least margin of extra rows
/// ([`RepairMargin`]) that keeps the chance that the answer's rows lose more than the margin
/// under this. A failed answer costs a round trip, which on a wide-area path is past the
/// frame's deadline and freezes the picture for it; the rows are few (repair is rare, and an
/// early answer carries none), so a generous margin is cheap: 1e-3 rather than 1e-2 cost ~1
/// point of overhead at 1 % / 30 % on virtual time (`wan_table`).
pub(crate) const REPAIR_TARGET: f64 = 1e-3;

/// Share of [`TargetConfig::target`] a block is planned for when its repair cannot land in
/// time ([`repair_in_time`]): what repair cannot reach is FEC's alone, so such a block is
/// planned ten times tighter.
pub(crate) const LATE_REPAIR_SHARE: f64 = 0.1;

/// Slack of the latency budget over one way + one RTT (`docs/wan.md`): a frame is on time
/// within one way + one RTT + this of its first datagram leaving.
pub(crate) const BUDGET_SLACK: Duration = Duration::from_millis(20);

/// Whether a repair round for a block fits in the latency budget (one way + one RTT +
/// [`BUDGET_SLACK`]) on a path of round trip `rtt`, once its loss shows `detect` after the
/// frame arrived: the answer lands 1.25 RTT + 2 ms after the loss is seen (one RTT, the jitter
/// of both legs, the answer's own rows). Large blocks show a loss at once (later shards overtake
/// the hole); a small frame's trailing rows come a frame interval later, and only then can the
/// client know what they cannot rebuild.
pub(crate) fn repair_in_time(rtt: Duration, detect: Duration) -> bool {
    detect + rtt.mul_f64(1.25) + Duration::from_millis(2) <= rtt + BUDGET_SLACK
}

/// Most extra rows one answer carries per block.
pub(crate) const MAX_REPAIR_MARGIN: usize = 16;

/// How long after the bandwidth estimator last saw a growing queue the loss reports are still
/// taken as congestion's: the client's loss model covers about a second
/// ([`WINDOW_REPORTS`](crate::protocol::fec::lossmodel::WINDOW_REPORTS) intervals), which still holds the loss
/// of the queue's overflow after the queue drained.
pub(crate) const CONGESTION_MEMORY: Duration = Duration::from_secs(1);

/// Whether the parity share follows the loss reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FecMode {
    /// Always the user's `fec-percent`.
    Fixed,
    /// The user's `fec-percent` as a floor, raised from loss reports.
    Adaptive,
    /// Per block size, the least parity that keeps a block's failure probability under
    /// [`TargetConfig::target`] under the client's loss model, within a floor and a ceiling.
    /// Until the first model arrives, `fec-percent` (as `Fixed`).
    Target,
}

/// Settings of [`FecMode::Target`].
///
/// Defaults and why:
/// - `target` 1e-4 per block: at 60 frames a second of one or two blocks, about one frame in
///   two minutes needs repair (or, past its deadline, a keyframe).
/// - floor: at least [`MIN_PARITY`] shards and 5 % of the block. With no loss in the model the
///   block still survives two losses (a sudden change is then usually covered until the next
///   report raises the parity, ~100 ms later) and the wire overhead on a clean link is 2/k for
///   blocks of up to 40 shards, 5 % above: ≤ 10 % for every frame of 20 shards (27 kB) or
///   more — a 720p x264 frame at 20 Mbit/s (42 kB, 32 shards: 6.3 %), a 1080p60 50 Mbit/s frame
///   (104 kB, 78 shards: 2.6 %). Smaller frames pay more (a one-datagram frame sends three
///   datagrams), which matters little in bytes since such streams are a few Mbit/s.
/// - ceiling: 100 % of the block, but at least 8 shards, so tiny frames can reach the target
///   even at 20 % loss (a one-shard frame needs 5 parity shards for 1e-4 at 20 % iid) while a
///   large block never more than doubles.
/// - rises at once; falls only after `hold` without a raise, then by a quarter of the gap to
///   what the model asks (at least one shard) per `decay_interval`: from 20 % to the floor of a
///   78-shard block in about 3.5 s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetConfig {
    /// Largest accepted probability that a block cannot be rebuilt.
    pub target: f64,
    /// Least parity, in percent of a block's data shards.
    pub floor_percent: u8,
    /// Least parity shards a block.
    pub floor_shards: u8,
    /// Most parity, in percent of a block's data shards.
    pub ceiling_percent: u16,
    /// Most parity shards a block.
    pub ceiling_shards: u8,
    /// How long a raised plan is kept before it may fall.
    pub hold: Duration,
    /// Time between two steps down of the plan.
    pub decay_interval: Duration,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            target: DEFAULT_TARGET,
            floor_percent: 5,
            floor_shards: MIN_PARITY as u8,
            ceiling_percent: 100,
            ceiling_shards: 8,
            hold: Duration::from_secs(1),
            decay_interval: Duration::from_millis(250),
        }
    }
}

impl TargetConfig {
    /// Least parity for a block of `k` data shards.
    pub fn floor(&self, k: usize) -> usize {
        let m = (k * self.floor_percent as usize)
            .div_ceil(100)
            .max(self.floor_shards as usize);
        m.min(MAX_SHARDS_PER_BLOCK.saturating_sub(k))
    }

    /// Most parity for a block of `k` data shards (never below the floor).
    pub fn ceiling(&self, k: usize) -> usize {
        let m = (k * self.ceiling_percent as usize)
            .div_ceil(100)
            .max(self.ceiling_shards as usize)
            .max(self.floor(k));
        m.min(MAX_SHARDS_PER_BLOCK.saturating_sub(k))
    }

    /// For every block size, the least `m` in `[floor, ceiling]` whose failure probability is
    /// at most the target under every model in `tables` (the ceiling if none is).
    pub fn demand(&self, tables: &[FailureTable]) -> ParityTable {
        self.demand_on_path(tables, 0, |_| self.target)
    }

    /// [`TargetConfig::demand`] with blocks of at most `trail_max_k` data shards sending
    /// their parity apart ([`trailing_parity`], planned by
    /// [`FailureTable::split_block_failure`]), and the target of block size `k` from
    /// `target(k)`.
    pub(crate) fn demand_on_path(
        &self,
        tables: &[FailureTable],
        trail_max_k: usize,
        target: impl Fn(usize) -> f64,
    ) -> ParityTable {
        let mut t = ParityTable::from_percent(0);
        for k in 1..MAX_SHARDS_PER_BLOCK {
            let (lo, hi) = (self.floor(k), self.ceiling(k));
            let goal = target(k);
            let fails = |m: usize| {
                let trailing = if k <= trail_max_k {
                    trailing_parity(k, m)
                } else {
                    0
                };
                tables
                    .iter()
                    .map(|f| f.split_block_failure(k, m, trailing))
                    .fold(0.0, f64::max)
            };
            let m = (lo..=hi).find(|&m| fails(m) <= goal).unwrap_or(hi);
            t.set(k, m);
        }
        t
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    received: u64,
    lost: u64,
}

/// The host's FEC controller for one session.
///
/// Policy (adaptive mode), with `p` the fraction of packets lost over the last
/// [`LOSS_WINDOW`] of reports:
/// - when `p > 0`, the share rises at once to at least `ceil(300 · p + 5)` percent;
/// - while reports show loss below a third of what the current share protects (a block with
///   `pct` percent parity survives losing `pct / (100 + pct)` of its shards), it falls by one
///   point per [`LOWER_STEP_INTERVAL`], never below what the window's loss calls for;
/// - it always stays within `[base_percent, max_percent]`.
#[derive(Debug, Clone)]
pub(crate) struct AdaptiveFec {
    mode: FecMode,
    base: u8,
    max: u8,
    percent: u8,
    /// Counters of the newest report accepted (cumulative since session start).
    last: Option<(u64, u64)>,
    window: VecDeque<Sample>,
    /// When the current run of clean reports started, or the share was last lowered.
    clean_since: Option<Instant>,
    /// Parity per block size, current for every mode.
    table: ParityTable,
    target_cfg: TargetConfig,
    /// Target mode: what the newest model asks for.
    demand: Option<ParityTable>,
    /// Target mode: extra rows for repair answers, from the newest model.
    margin: RepairMargin,
    /// Until when loss is taken as congestion's (see [`AdaptiveFec::on_congestion`]).
    congested_until: Option<Instant>,
    /// Target mode: when any block size's parity last rose, and last fell.
    last_raise: Option<Instant>,
    last_decay: Option<Instant>,
    /// The path as last measured: round trip and frame interval (`None` before an RTT).
    path: Option<(Duration, Duration)>,
}

/// Percent of parity that a loss of `lost` out of `total` packets calls for (0 for no loss).
fn target_for(lost: u128, total: u128) -> u128 {
    if lost == 0 || total == 0 {
        return 0;
    }
    // ceil(3 · 100 · lost / total) + 5, exact in integers.
    (RAISE_FACTOR * 100 * lost).div_ceil(total) + RAISE_MARGIN
}

/// True when `lost / total` is below a third of the loss `pct` percent parity survives,
/// `pct / (100 + pct)`.
fn is_clean(lost: u128, total: u128, pct: u8) -> bool {
    let pct = pct as u128;
    lost * 3 * (100 + pct) < pct * total
}

impl AdaptiveFec {
    /// A controller starting at `base_percent`. `max_percent` below `base_percent` is taken
    /// as `base_percent`.
    pub(crate) fn new(mode: FecMode, base_percent: u8, max_percent: u8) -> Self {
        let table = ParityTable::from_percent(base_percent);
        AdaptiveFec {
            mode,
            base: base_percent,
            max: max_percent.max(base_percent),
            percent: base_percent,
            last: None,
            window: VecDeque::new(),
            clean_since: None,
            table,
            target_cfg: TargetConfig::default(),
            demand: None,
            margin: RepairMargin::NONE,
            congested_until: None,
            last_raise: None,
            last_decay: None,
            path: None,
        }
    }

    /// The path's round trip and the stream's frame interval, as measured now: blocks whose
    /// repair cannot land within the latency budget are planned tighter (see
    /// [`repair_in_time`], [`LATE_REPAIR_SHARE`]). Until it is called every block is planned
    /// for [`TargetConfig::target`].
    ///
    /// In target mode it also chooses where small frames' parity goes (PROTOCOL §9.3): behind
    /// the next frame when that is sooner than a repair answer (1.25 RTT + 2 ms exceeds a frame
    /// interval: any WAN path), right behind the frame's data otherwise (a LAN, where repair
    /// lands within a frame interval and one burst rarely outlasts it).
    pub(crate) fn set_path(&mut self, rtt: Duration, frame_interval: Duration) {
        self.path = Some((rtt, frame_interval));
        if self.mode == FecMode::Target {
            let trail = rtt.mul_f64(1.25) + Duration::from_millis(2) > frame_interval;
            self.table
                .set_trailing(if trail { MAX_TRAILING_K } else { 0 });
        }
    }

    /// The failure target of a block of `k` data shards on the path as measured.
    fn block_target(&self, k: usize) -> f64 {
        let base = self.target_cfg.target;
        let Some((rtt, fi)) = self.path else {
            return base;
        };
        let detect = if self.table.trails(k) {
            // Its rows follow the next frame; the client asks a few ms after they should
            // have come.
            fi + Duration::from_millis(3)
        } else {
            Duration::ZERO
        };
        if repair_in_time(rtt, detect) {
            base
        } else {
            base * LATE_REPAIR_SHARE
        }
    }

    /// Frames of one block of at most `max_k` data shards send their parity behind the next
    /// frame (target mode's default: [`MAX_TRAILING_K`]; 0 turns it off).
    #[cfg(test)]
    pub(crate) fn with_trailing(mut self, max_k: usize) -> Self {
        self.table.set_trailing(max_k);
        self
    }

    /// Target mode with these settings (the defaults otherwise).
    pub(crate) fn with_target(mut self, cfg: TargetConfig) -> Self {
        self.target_cfg = cfg;
        self
    }

    #[cfg(test)]
    pub(crate) fn target_config(&self) -> &TargetConfig {
        &self.target_cfg
    }

    /// Parity for each block size, to packetize the next frame with
    /// ([`Packetizer::plan_with`](crate::protocol::media::packetizer::Packetizer::plan_with)).
    pub(crate) fn parity_table(&self) -> &ParityTable {
        &self.table
    }

    /// The bandwidth estimator's verdict at `now`: `congested` while it sees a growing queue
    /// (its `Drain` state: over-use seen, the queue being drained). Target mode then takes loss as congestion's, not the
    /// path's: from now until [`CONGESTION_MEMORY`] after the last congested verdict, loss
    /// models raise no parity, and every block's parity is capped at its data shard count
    /// (never below the floor), so parity and repair do not deepen the queue that loses.
    pub(crate) fn on_congestion(&mut self, congested: bool, now: Instant) {
        if !congested || self.mode != FecMode::Target {
            return;
        }
        self.congested_until = Some(now + CONGESTION_MEMORY);
        for k in 1..MAX_SHARDS_PER_BLOCK {
            let cap = self.congested_cap(k);
            if self.table.parity(k) > cap {
                self.table.set(k, cap);
            }
        }
    }

    fn congested(&self, now: Instant) -> bool {
        self.congested_until.is_some_and(|t| now < t)
    }

    /// Most parity for a block of `k` data shards while the path is congested: the data
    /// shard count, but never below the floor.
    fn congested_cap(&self, k: usize) -> usize {
        k.max(self.target_cfg.floor(k))
    }

    /// Extra rows a repair answer carries now (none before a loss model, and outside target
    /// mode).
    pub(crate) fn repair_margin(&self) -> RepairMargin {
        self.margin
    }

    /// Parity for a block of `k` data shards now.
    #[cfg(test)]
    pub(crate) fn block_parity(&self, k: usize) -> usize {
        self.table.parity(k)
    }

    /// Feeds one loss report from the client: its counters (adaptive mode), then its loss
    /// model (target mode).
    pub(crate) fn on_report(&mut self, report: &LossReport, now: Instant) {
        self.on_loss_report(report.packets_received, report.packets_lost, now);
        self.on_loss_model(&report.model, now);
    }

    /// Feeds one loss model report (target mode; ignored otherwise). Raises the parity of
    /// every block size whose demand went up at once; lowers it slowly (see [`TargetConfig`]).
    /// Planned against the worse of the window's model and the latest interval's, so a change
    /// shows within one report. Reports should be fed in the order they were sent (the
    /// session drops a model report older than the newest one it used).
    pub(crate) fn on_loss_model(&mut self, report: &LossModelReport, now: Instant) {
        if self.mode != FecMode::Target {
            return;
        }
        let models: Vec<GilbertElliott> = [&report.window, &report.recent]
            .into_iter()
            .filter_map(GilbertElliott::from_counts)
            .collect();
        if models.is_empty() {
            return;
        }
        let tables: Vec<FailureTable> = models
            .iter()
            .map(|g| FailureTable::new(g, MAX_SHARDS_PER_BLOCK))
            .collect();
        let trail_max_k = (1..=MAX_TRAILING_K)
            .rev()
            .find(|&k| self.table.trails(k))
            .unwrap_or(0);
        let mut demand = self
            .target_cfg
            .demand_on_path(&tables, trail_max_k, |k| self.block_target(k));
        if self.congested(now) {
            // Loss that comes with a growing queue is the queue's overflow: parity would only
            // feed the queue. Nothing rises beyond what is planned now or beyond the data.
            for k in 1..MAX_SHARDS_PER_BLOCK {
                let cap = self.table.parity(k).min(self.congested_cap(k));
                demand.set(k, demand.parity(k).min(cap));
            }
        }
        self.margin = RepairMargin::from_fn(|n| {
            (0..=MAX_REPAIR_MARGIN)
                .find(|&e| {
                    tables
                        .iter()
                        .all(|t| t.block_failure(n, e) <= REPAIR_TARGET)
                })
                .unwrap_or(MAX_REPAIR_MARGIN)
        });
        let mut raised = false;
        for k in 1..MAX_SHARDS_PER_BLOCK {
            let (cur, want) = (self.table.parity(k), demand.parity(k));
            if want > cur {
                self.table.set(k, want);
                raised |= want > cur;
            }
        }
        self.demand = Some(demand);
        if raised {
            self.last_raise = Some(now);
            return;
        }
        let held = self
            .last_raise
            .is_none_or(|t| now.saturating_duration_since(t) >= self.target_cfg.hold);
        let due = self
            .last_decay
            .is_none_or(|t| now.saturating_duration_since(t) >= self.target_cfg.decay_interval);
        if !(held && due) {
            return;
        }
        let Some(demand) = &self.demand else { return };
        let mut lowered = false;
        for k in 1..MAX_SHARDS_PER_BLOCK {
            let (cur, want) = (self.table.parity(k), demand.parity(k));
            if cur > want {
                let step = ((cur - want) / 4).max(1);
                self.table.set(k, cur - step);
                lowered = true;
            }
        }
        if lowered {
            self.last_decay = Some(now);
        }
    }

    /// The share of the largest block size, in percent (for stats).
    fn target_percent(&self) -> u8 {
        let k = MAX_DATA_SHARDS_PER_BLOCK;
        (self.table.parity(k) * 100).div_ceil(k).min(255) as u8
    }

    #[cfg(test)]
    pub(crate) fn mode(&self) -> FecMode {
        self.mode
    }

    #[cfg(test)]
    pub(crate) fn base_percent(&self) -> u8 {
        self.base
    }

    #[cfg(test)]
    pub(crate) fn max_percent(&self) -> u8 {
        self.max
    }

    /// The parity share to use now, in percent of the data shards.
    pub(crate) fn percent(&self) -> u8 {
        match self.mode {
            FecMode::Fixed => self.base,
            FecMode::Adaptive => self.percent,
            FecMode::Target => self.target_percent(),
        }
    }

    /// The share to packetize with: [`AdaptiveFec::percent`] rounded up to a multiple of
    /// [`ADAPTIVE_STEP`] when the controller is above its base. Every distinct share gives
    /// blocks a new `(k, m)`, and each new pair costs a Reed-Solomon coder build (a matrix
    /// inversion, milliseconds for large blocks) on both ends; steps keep the pairs few, so a
    /// share that moves point by point does not stall keyframes. Never below `percent()`,
    /// never above the maximum.
    pub(crate) fn wire_percent(&self) -> u8 {
        let p = self.percent();
        if self.mode != FecMode::Adaptive || p <= self.base {
            return p;
        }
        (p.div_ceil(ADAPTIVE_STEP) * ADAPTIVE_STEP).clamp(p, self.max)
    }

    /// Loss fraction over the report window, if the window holds any packets.
    #[cfg(test)]
    pub(crate) fn window_loss(&self) -> Option<f64> {
        let (lost, total) = self.window_totals();
        (total > 0).then(|| lost as f64 / total as f64)
    }

    fn window_totals(&self) -> (u128, u128) {
        self.window.iter().fold((0, 0), |(l, t), s| {
            (l + s.lost as u128, t + s.lost as u128 + s.received as u128)
        })
    }

    /// Feeds one loss report. `packets_received` and `packets_lost` are cumulative since the
    /// session started; a report whose counters went backwards (reordered or stale) is
    /// ignored, and so is one that adds nothing (a duplicate, or no traffic).
    pub(crate) fn on_loss_report(
        &mut self,
        packets_received: u64,
        packets_lost: u64,
        now: Instant,
    ) {
        let before = self.wire_percent();
        self.adaptive_report(packets_received, packets_lost, now);
        let after = self.wire_percent();
        if self.mode == FecMode::Adaptive && after != before {
            self.table = ParityTable::from_percent(after);
        }
    }

    fn adaptive_report(&mut self, packets_received: u64, packets_lost: u64, now: Instant) {
        let (d_received, d_lost) = match self.last {
            None => (packets_received, packets_lost),
            Some((r, l)) => {
                if packets_received < r || packets_lost < l {
                    return;
                }
                (packets_received - r, packets_lost - l)
            }
        };
        self.last = Some((packets_received, packets_lost));
        if d_received == 0 && d_lost == 0 {
            return;
        }
        if self.mode != FecMode::Adaptive {
            return;
        }

        while let Some(s) = self.window.front() {
            if now.saturating_duration_since(s.at) >= LOSS_WINDOW
                || self.window.len() >= MAX_WINDOW_REPORTS
            {
                self.window.pop_front();
            } else {
                break;
            }
        }
        self.window.push_back(Sample {
            at: now,
            received: d_received,
            lost: d_lost,
        });

        let (lost, total) = self.window_totals();
        let target = target_for(lost, total).clamp(self.base as u128, self.max as u128) as u8;
        if target > self.percent {
            self.percent = target;
            self.clean_since = None;
            return;
        }

        let report_total = d_received as u128 + d_lost as u128;
        if !is_clean(d_lost as u128, report_total, self.percent) {
            self.clean_since = None;
            return;
        }
        match self.clean_since {
            None => self.clean_since = Some(now),
            Some(since) => {
                if now.saturating_duration_since(since) >= LOWER_STEP_INTERVAL {
                    let floor = target.max(self.base);
                    if self.percent > floor {
                        self.percent -= 1;
                    }
                    self.clean_since = Some(now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod wire_percent_tests;

#[cfg(test)]
mod target_tests;
