//! The host's FEC controller: how much parity each block gets, from the client's reports.
//!
//! Three modes ([`FecMode`]): `Fixed` (the user's `fec-percent`), `Adaptive` (a share raised
//! from the loss fraction of [`Control::LossReport`](crate::protocol::control::Control)s) and `Target`
//! (per block size, the least parity that keeps the probability that a block cannot be rebuilt
//! under a target, from the client's loss model — see [`TargetConfig`] and `docs/PROTOCOL.md`
//! §9). Every mode yields a [`ParityTable`] (`m` per block size `k`) for the packetizer.
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

/// The span of recent reports the loss fraction is measured over. The client reports about
/// every 100 ms, so this is about five reports: short enough to react within a frame or two
/// of a burst, long enough that one lost report does not read as a clean link.
pub const LOSS_WINDOW: Duration = Duration::from_millis(500);

/// Granularity of the share actually used for packetizing (see [`AdaptiveFec::wire_percent`]).
pub const ADAPTIVE_STEP: u8 = 5;

/// The share is lowered by at most one percentage point per this much time of clean reports.
pub const LOWER_STEP_INTERVAL: Duration = Duration::from_millis(500);

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
pub const DEFAULT_TARGET: f64 = 1e-3;

/// Failure probability a repair answer is planned for: the least margin of extra rows
/// ([`RepairMargin`]) that keeps the chance that the answer's rows lose more than the margin
/// under this. A failed answer costs a round trip, which on a wide-area path is past the
/// frame's deadline; the rows are few (repair is rare), so a generous margin is cheap.
pub const REPAIR_TARGET: f64 = 1e-2;

/// Share of [`TargetConfig::target`] a block is planned for when its repair cannot land in
/// time ([`repair_in_time`]): what repair cannot reach is FEC's alone, so such a block is
/// planned ten times tighter.
pub const LATE_REPAIR_SHARE: f64 = 0.1;

/// Slack of the latency budget over one way + one RTT (`docs/wan.md`): a frame is on time
/// within one way + one RTT + this of its first datagram leaving.
pub const BUDGET_SLACK: Duration = Duration::from_millis(20);

/// Whether a repair round for a block fits in the latency budget (one way + one RTT +
/// [`BUDGET_SLACK`]) on a path of round trip `rtt`, once its loss shows `detect` after the
/// frame arrived: the answer lands 1.25 RTT + 2 ms after the loss is seen (one RTT, the jitter
/// of both legs, the answer's own rows). Large blocks show a loss at once (later shards overtake
/// the hole); a small frame's trailing rows come a frame interval later, and only then can the
/// client know what they cannot rebuild.
pub fn repair_in_time(rtt: Duration, detect: Duration) -> bool {
    detect + rtt.mul_f64(1.25) + Duration::from_millis(2) <= rtt + BUDGET_SLACK
}

/// Most extra rows one answer carries per block.
pub const MAX_REPAIR_MARGIN: usize = 16;

/// How long after the bandwidth estimator last saw a growing queue the loss reports are still
/// taken as congestion's: the client's loss model covers about a second
/// ([`WINDOW_REPORTS`](crate::protocol::fec::lossmodel::WINDOW_REPORTS) intervals), which still holds the loss
/// of the queue's overflow after the queue drained.
pub const CONGESTION_MEMORY: Duration = Duration::from_secs(1);

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
    pub target: f64,
    pub floor_percent: u8,
    pub floor_shards: u8,
    pub ceiling_percent: u16,
    pub ceiling_shards: u8,
    pub hold: Duration,
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
    pub fn demand_on_path(
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
pub struct AdaptiveFec {
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
    pub fn new(mode: FecMode, base_percent: u8, max_percent: u8) -> Self {
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
    pub fn set_path(&mut self, rtt: Duration, frame_interval: Duration) {
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
    pub fn with_trailing(mut self, max_k: usize) -> Self {
        self.table.set_trailing(max_k);
        self
    }

    /// Target mode with these settings (the defaults otherwise).
    pub fn with_target(mut self, cfg: TargetConfig) -> Self {
        self.target_cfg = cfg;
        self
    }

    pub fn target_config(&self) -> &TargetConfig {
        &self.target_cfg
    }

    /// Parity for each block size, to packetize the next frame with
    /// ([`Packetizer::plan_with`](crate::protocol::media::packetizer::Packetizer::plan_with)).
    pub fn parity_table(&self) -> &ParityTable {
        &self.table
    }

    /// The bandwidth estimator's verdict at `now`: `congested` while it sees a growing queue
    /// (its `Drain` state: over-use seen, the queue being drained). Target mode then takes loss as congestion's, not the
    /// path's: from now until [`CONGESTION_MEMORY`] after the last congested verdict, loss
    /// models raise no parity, and every block's parity is capped at its data shard count
    /// (never below the floor), so parity and repair do not deepen the queue that loses.
    pub fn on_congestion(&mut self, congested: bool, now: Instant) {
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
    pub fn repair_margin(&self) -> RepairMargin {
        self.margin
    }

    /// Parity for a block of `k` data shards now.
    pub fn block_parity(&self, k: usize) -> usize {
        self.table.parity(k)
    }

    /// Feeds one loss model report (target mode; ignored otherwise). Raises the parity of
    /// every block size whose demand went up at once; lowers it slowly (see [`TargetConfig`]).
    /// Planned against the worse of the window's model and the latest interval's, so a change
    /// shows within one report. Reports should be fed in the order they were sent (the
    /// session drops a model report older than the newest one it used).
    pub fn on_loss_model(&mut self, report: &LossModelReport, now: Instant) {
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

    pub fn mode(&self) -> FecMode {
        self.mode
    }

    pub fn base_percent(&self) -> u8 {
        self.base
    }

    pub fn max_percent(&self) -> u8 {
        self.max
    }

    /// The parity share to use now, in percent of the data shards.
    pub fn percent(&self) -> u8 {
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
    pub fn wire_percent(&self) -> u8 {
        let p = self.percent();
        if self.mode != FecMode::Adaptive || p <= self.base {
            return p;
        }
        (p.div_ceil(ADAPTIVE_STEP) * ADAPTIVE_STEP).clamp(p, self.max)
    }

    /// Loss fraction over the report window, if the window holds any packets.
    pub fn window_loss(&self) -> Option<f64> {
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
    pub fn on_loss_report(&mut self, packets_received: u64, packets_lost: u64, now: Instant) {
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
mod tests {
    use super::*;
    use crate::protocol::fec::coder::{MAX_SHARDS_PER_BLOCK, parity_for};
    use proptest::prelude::*;

    const TICK: Duration = Duration::from_millis(100);

    /// A client that reports cumulative counters every 100 ms.
    struct Client {
        received: u64,
        lost: u64,
        now: Instant,
    }

    impl Client {
        fn new() -> Self {
            Client {
                received: 0,
                lost: 0,
                now: Instant::now(),
            }
        }

        /// Advances 100 ms with `packets` sent of which `lost` were lost, and reports.
        fn report(&mut self, fec: &mut AdaptiveFec, packets: u64, lost: u64) {
            self.now += TICK;
            self.received += packets - lost;
            self.lost += lost;
            fec.on_loss_report(self.received, self.lost, self.now);
        }
    }

    #[test]
    fn starts_at_base_and_clamps_max() {
        let f = AdaptiveFec::new(FecMode::Adaptive, 20, 100);
        assert_eq!(f.percent(), 20);
        assert_eq!(f.base_percent(), 20);
        assert_eq!(f.max_percent(), 100);
        assert_eq!(f.mode(), FecMode::Adaptive);
        assert_eq!(
            AdaptiveFec::new(FecMode::Adaptive, 50, 10).max_percent(),
            50
        );
        assert_eq!(f.window_loss(), None);
    }

    #[test]
    fn fixed_mode_always_returns_base() {
        let mut f = AdaptiveFec::new(FecMode::Fixed, 15, 100);
        let mut c = Client::new();
        for _ in 0..20 {
            c.report(&mut f, 1000, 400);
            assert_eq!(f.percent(), 15);
        }
        for _ in 0..200 {
            c.report(&mut f, 1000, 0);
            assert_eq!(f.percent(), 15);
        }
    }

    #[test]
    fn loss_raises_at_once() {
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 10, 100);
        let mut c = Client::new();
        c.report(&mut f, 1000, 0);
        assert_eq!(f.percent(), 10);
        // 10 % loss: ceil(30 + 5) = 35.
        c.report(&mut f, 1000, 200);
        // Window: 200 lost of 2000 = 10 %.
        assert_eq!(f.window_loss(), Some(0.1));
        assert_eq!(f.percent(), 35);
        // Heavier loss raises further, up to max.
        c.report(&mut f, 1000, 900);
        assert_eq!(f.percent(), 100);
        let mut g = AdaptiveFec::new(FecMode::Adaptive, 10, 40);
        Client::new().report(&mut g, 100, 50);
        assert_eq!(g.percent(), 40);
    }

    #[test]
    fn raise_is_exact_and_never_below_base() {
        // 1 % loss: ceil(3 + 5) = 8, below a base of 10.
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 10, 100);
        Client::new().report(&mut f, 1000, 10);
        assert_eq!(f.percent(), 10);
        // 1 lost of 3: ceil(100) + 5 = 105 → max 100; 1 of 7: ceil(42.86) + 5 = 48.
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 100);
        Client::new().report(&mut f, 7, 1);
        assert_eq!(f.percent(), 48);
        // A tiny loss still raises from a base of 0 to at least 6.
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 100);
        Client::new().report(&mut f, 1_000_000, 1);
        assert_eq!(f.percent(), 6);
    }

    #[test]
    fn clean_link_does_not_raise() {
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 100);
        let mut c = Client::new();
        for _ in 0..50 {
            c.report(&mut f, 1000, 0);
            assert_eq!(f.percent(), 0);
        }
    }

    #[test]
    fn lowers_slowly_to_base() {
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 10, 100);
        let mut c = Client::new();
        c.report(&mut f, 1000, 100);
        assert_eq!(f.percent(), 35);
        let raised_at = c.now;
        let mut last = f.percent();
        let mut last_change = raised_at;
        for _ in 0..200 {
            c.report(&mut f, 1000, 0);
            let p = f.percent();
            assert!(p <= last);
            if p < last {
                assert_eq!(last - p, 1);
                assert!(c.now - last_change >= LOWER_STEP_INTERVAL);
                last_change = c.now;
            }
            last = p;
        }
        // 20 s of clean reports are enough to come back down from 35 to 10 at 1 / 0.5 s...
        assert_eq!(f.percent(), 10);
        // ...and it took at least 25 × 0.5 s.
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 10, 100);
        let mut c = Client::new();
        c.report(&mut f, 1000, 100);
        for _ in 0..100 {
            c.report(&mut f, 1000, 0);
        }
        assert!(f.percent() > 10, "lowered too fast: {}", f.percent());
    }

    #[test]
    fn moderate_loss_holds_the_share() {
        // At 35 % parity a block survives 25.9 % loss; a third of that is 8.6 %.
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 10, 100);
        let mut c = Client::new();
        c.report(&mut f, 1000, 100);
        assert_eq!(f.percent(), 35);
        for _ in 0..50 {
            // 9 % loss: not clean (≥ 8.6 %), and the target (32) does not raise it either.
            c.report(&mut f, 1000, 90);
            assert_eq!(f.percent(), 35);
        }
    }

    #[test]
    fn never_lowers_below_what_the_window_calls_for() {
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 100);
        let mut c = Client::new();
        c.report(&mut f, 1000, 100);
        assert_eq!(f.percent(), 35);
        for _ in 0..100 {
            // 5 % loss is clean at 35 % (below 8.6 %) but calls for 20 %.
            c.report(&mut f, 1000, 50);
        }
        assert_eq!(f.percent(), 20);
    }

    #[test]
    fn a_lossy_report_restarts_the_clean_run() {
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 100);
        let mut c = Client::new();
        c.report(&mut f, 1000, 100);
        assert_eq!(f.percent(), 35);
        for _ in 0..10 {
            for _ in 0..4 {
                c.report(&mut f, 1000, 0);
            }
            // Loss above the clean line every 0.5 s; the window's average stays below a raise.
            c.report(&mut f, 1000, 100);
        }
        assert_eq!(f.percent(), 35);
    }

    #[test]
    fn reordered_and_duplicated_reports_are_ignored() {
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 10, 100);
        let t = Instant::now();
        f.on_loss_report(1000, 0, t + TICK);
        f.on_loss_report(2000, 10, t + TICK * 2);
        assert_eq!(f.percent(), 10);
        // An older report arriving late: received went backwards, ignored.
        f.on_loss_report(1500, 300, t + TICK * 3);
        // Received forward but lost backwards: also ignored.
        f.on_loss_report(2500, 5, t + TICK * 3);
        assert_eq!(f.last, Some((2000, 10)));
        assert_eq!(f.percent(), 10);
        // The loss arrives: 190 lost of 2000 in the newest interval, 200 of 4200 in the window
        // (4.76 %): ceil(14.29) + 5 = 20.
        f.on_loss_report(4000, 200, t + TICK * 5);
        let raised = f.percent();
        assert_eq!(raised, 20);
        // Duplicates of it change nothing (no new packets: no information).
        for i in 0..20 {
            f.on_loss_report(4000, 200, t + TICK * 5 + Duration::from_millis(i));
        }
        assert_eq!(f.percent(), raised);
        assert_eq!(f.last, Some((4000, 200)));
        // Duplicates of a clean report neither count as clean time nor break the clean run.
        let start = t + TICK * 6;
        f.on_loss_report(100_000, 200, start);
        for i in 0..1000 {
            f.on_loss_report(100_000, 200, start + Duration::from_micros(i * 400));
        }
        assert_eq!(f.percent(), raised);
        f.on_loss_report(200_000, 200, start + LOWER_STEP_INTERVAL);
        assert_eq!(f.percent(), raised - 1);
    }

    #[test]
    fn first_report_counts_from_session_start() {
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 100);
        f.on_loss_report(900, 100, Instant::now());
        assert_eq!(f.percent(), 35);
    }

    #[test]
    fn huge_counters_do_not_overflow() {
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 0, 255);
        let t = Instant::now();
        f.on_loss_report(u64::MAX, u64::MAX, t);
        assert_eq!(f.percent(), 155);
        f.on_loss_report(u64::MAX, u64::MAX, t + TICK);
        assert_eq!(f.percent(), 155);
    }

    #[test]
    fn parity_for_rules() {
        assert_eq!(parity_for(10, 0), 0);
        assert_eq!(parity_for(0, 20), 0);
        assert_eq!(parity_for(1, 1), 2);
        assert_eq!(parity_for(10, 20), 2);
        assert_eq!(parity_for(64, 20), 13);
        assert_eq!(parity_for(100, 20), 20);
        assert_eq!(parity_for(101, 20), 21);
        assert_eq!(parity_for(200, 50), 56);
        assert_eq!(parity_for(250, 20), 6);
        assert_eq!(parity_for(255, 20), 1);
        assert_eq!(parity_for(256, 20), 0);
        assert_eq!(parity_for(1000, 20), 0);
        assert_eq!(parity_for(100, 255), 156);
        assert_eq!(parity_for(usize::MAX, 255), 0);
    }

    proptest! {
        #[test]
        fn prop_parity_for(k in 0usize..400, pct in any::<u8>()) {
            let m = parity_for(k, pct);
            if pct == 0 || k == 0 {
                prop_assert_eq!(m, 0);
            } else {
                prop_assert!(k + m <= MAX_SHARDS_PER_BLOCK || m == 0);
                let want = (k * pct as usize).div_ceil(100).max(2);
                prop_assert_eq!(m, want.min(MAX_SHARDS_PER_BLOCK.saturating_sub(k)));
                // Enough parity for the requested share whenever the block has room.
                if k + want <= MAX_SHARDS_PER_BLOCK {
                    prop_assert!(m * 100 >= k * pct as usize);
                }
            }
        }

        /// Any report stream — lost, duplicated, reordered, hostile counters — keeps the share
        /// in [base, max] and never lowers it faster than one point per 500 ms.
        #[test]
        fn prop_share_stays_in_bounds_and_lowers_slowly(
            base in 0u8..60,
            max in 0u8..=255,
            reports in proptest::collection::vec(
                (0u64..1_000_000, 0u64..100_000, 0u64..300), 1..200),
        ) {
            let mut f = AdaptiveFec::new(FecMode::Adaptive, base, max);
            let mut now = Instant::now();
            let mut prev = f.percent();
            let mut last_lower: Option<Instant> = None;
            for (received, lost, gap_ms) in reports {
                now += Duration::from_millis(gap_ms);
                f.on_loss_report(received, lost, now);
                let p = f.percent();
                prop_assert!(p >= base && p <= max.max(base));
                if p < prev {
                    prop_assert_eq!(prev - p, 1);
                    if let Some(t) = last_lower {
                        prop_assert!(now - t >= LOWER_STEP_INTERVAL);
                    }
                    last_lower = Some(now);
                }
                prev = p;
            }
        }
    }
}

#[cfg(test)]
mod wire_percent_tests {
    use super::{AdaptiveFec, FecMode};
    use std::time::{Duration, Instant};

    #[test]
    fn wire_percent_moves_in_steps_above_the_base() {
        let t = Instant::now();
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 20, 100);
        assert_eq!(f.wire_percent(), 20, "the base is used as it is");
        // 1 lost in 100: the controller asks for ceil(3 + 5) = 8 < base: stays at 20.
        f.on_loss_report(99, 1, t);
        assert_eq!(f.wire_percent(), 20);
        // 11 % loss in the window: the controller moves above the base, the wire share is the
        // next multiple of 5 at or above it.
        f.on_loss_report(99 + 89, 1 + 11, t + Duration::from_millis(100));
        let p = f.percent();
        assert!(p > 20);
        assert_eq!(f.wire_percent(), p.div_ceil(5) * 5);
        assert!(f.wire_percent() >= p && f.wire_percent() - p < 5);
        // Never above the maximum.
        let mut g = AdaptiveFec::new(FecMode::Adaptive, 20, 37);
        g.on_loss_report(50, 50, t);
        assert_eq!(g.percent(), 37);
        assert_eq!(g.wire_percent(), 37);
        // Fixed mode is the base, unrounded.
        assert_eq!(AdaptiveFec::new(FecMode::Fixed, 23, 100).wire_percent(), 23);
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;
    use crate::protocol::fec::lossmodel::{LossCounts, binomial_tail};
    use proptest::prelude::*;

    const TICK: Duration = Duration::from_millis(100);

    fn report(window: LossCounts, recent: LossCounts) -> LossModelReport {
        let mut burst_hist = [0; 8];
        burst_hist[0] = window.bursts;
        LossModelReport {
            window_ms: 1000,
            recent,
            window,
            burst_hist,
        }
    }

    fn counts(packets: u32, lost: u32, bursts: u32) -> LossCounts {
        LossCounts {
            packets,
            lost,
            bursts,
        }
    }

    /// Counts whose Gilbert fit is exactly iid loss `q` (p = q, r = 1 − q).
    fn iid_counts(q_permille: u32) -> LossCounts {
        let packets = 100_000;
        let lost = packets / 1000 * q_permille;
        let bursts = lost / 1000 * (1000 - q_permille);
        counts(packets, lost, bursts)
    }

    /// Target mode at 1e-4 (the figures below are for that target, not the default).
    /// (Every block planned as one run of consecutive datagrams: trailing parity off.)
    fn target() -> AdaptiveFec {
        AdaptiveFec::new(FecMode::Target, 20, 100)
            .with_target(TargetConfig {
                target: 1e-4,
                ..TargetConfig::default()
            })
            .with_trailing(0)
    }

    /// Failure of a block whose last `t` rows are sent after `gap` other datagrams, by seeded
    /// Monte Carlo over the Gilbert chain.
    fn monte_carlo_split(p: f64, r: f64, k: usize, m: usize, t: usize, gap: usize) -> f64 {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut unit = || {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        };
        let pb = p / (p + r);
        let trials = 400_000u32;
        let mut fails = 0u32;
        for _ in 0..trials {
            let mut bad = unit() < pb;
            let mut lost = 0;
            for i in 0..k + m + gap {
                let mine = i < k + m - t || i >= k + m - t + gap;
                lost += usize::from(bad && mine);
                bad = if bad { unit() >= r } else { unit() < p };
            }
            fails += u32::from(lost > m);
        }
        f64::from(fails) / f64::from(trials)
    }

    /// The split plan: a small block's failure over its two runs (data, and the trailing rows
    /// a frame later) matches Monte Carlo with a frame's datagrams between them, lies far below
    /// the consecutive block's, and the controller picks the least `m` that meets the target
    /// under it; on a path where repair cannot land in time the target is ten times tighter,
    /// on one where it can (or before an RTT) it is the configured one.
    #[test]
    fn small_blocks_are_planned_with_their_parity_apart_and_by_the_round_trip() {
        let (p, r) = (0.02, 0.2);
        let g = GilbertElliott {
            p,
            r,
            loss_good: 0.0,
            loss_bad: 1.0,
        };
        let t = FailureTable::new(&g, MAX_SHARDS_PER_BLOCK);
        for (k, m) in [(7, 4), (7, 8), (3, 4)] {
            let tr = trailing_parity(k, m);
            let exact = t.split_block_failure(k, m, tr);
            let mc = monte_carlo_split(p, r, k, m, tr, 15);
            assert!(
                (exact - mc).abs() < 0.15 * exact + 2e-4,
                "k {k} m {m}: {exact} vs {mc}"
            );
            // Apart, a burst that takes the data whole leaves the rows (m > k) to rebuild it.
            if m > k {
                assert!(exact < t.block_failure(k, m) / 2.0, "k {k} m {m}");
            }
        }
        let c = LossCounts {
            packets: 100_000,
            lost: 9_000,
            bursts: 1_800,
        };
        let plan = |f: &mut AdaptiveFec| {
            f.on_loss_model(&report(c, c), Instant::now());
            f.block_parity(7)
        };
        let mut lan = AdaptiveFec::new(FecMode::Target, 20, 100);
        lan.set_path(Duration::from_millis(1), Duration::from_micros(16_667));
        let mut wan = AdaptiveFec::new(FecMode::Target, 20, 100);
        wan.set_path(Duration::from_millis(60), Duration::from_micros(16_667));
        let (m_lan, m_wan) = (plan(&mut lan), plan(&mut wan));
        assert!(m_wan >= m_lan, "{m_wan} < {m_lan}");
        let models: Vec<FailureTable> = [&report(c, c).window]
            .into_iter()
            .filter_map(GilbertElliott::from_counts)
            .map(|g| FailureTable::new(&g, MAX_SHARDS_PER_BLOCK))
            .collect();
        let cfg = TargetConfig::default();
        let fails = |m: usize| models[0].split_block_failure(7, m, trailing_parity(7, m));
        if m_lan > cfg.floor(7) && m_lan < cfg.ceiling(7) {
            assert!(fails(m_lan) <= cfg.target && fails(m_lan - 1) > cfg.target);
        }
        // Large blocks keep the configured target on both paths (a loss shows at once).
        assert!(repair_in_time(Duration::from_millis(60), Duration::ZERO));
        assert!(!repair_in_time(
            Duration::from_millis(60),
            Duration::from_micros(19_667)
        ));
        assert!(repair_in_time(Duration::from_millis(1), Duration::ZERO));
    }

    #[test]
    fn iid_choice_is_the_least_parity_under_the_binomial_tail() {
        for q in [10u32, 50, 100, 200] {
            // Base 0: the first report raises every block size straight to what it asks.
            let mut f = AdaptiveFec::new(FecMode::Target, 0, 100);
            let c = iid_counts(q);
            f.on_loss_model(&report(c, c), Instant::now());
            let cfg = *f.target_config();
            let qf = f64::from(q) / 1000.0;
            for k in [1usize, 2, 5, 10, 20, 32, 64, 78, 100, 128] {
                let m = f.block_parity(k);
                assert!(
                    m >= cfg.floor(k) && m <= cfg.ceiling(k),
                    "q {q} k {k} m {m}"
                );
                let fail = binomial_tail(k + m, qf, m);
                if m < cfg.ceiling(k) {
                    assert!(
                        fail <= cfg.target * (1.0 + 1e-9),
                        "q {q} k {k} m {m}: {fail}"
                    );
                }
                if m > cfg.floor(k) {
                    let less = binomial_tail(k + m - 1, qf, m - 1);
                    assert!(
                        less > cfg.target,
                        "q {q} k {k}: m {m} not the least ({less})"
                    );
                }
            }
        }
        // Some figures (checked with an independent exact binomial sum): at 10 % iid a 32-shard
        // block needs 13 parity shards, a 128-shard block 31; at 20 % a one-shard frame 5.
        let mut f = target();
        let c = iid_counts(100);
        f.on_loss_model(&report(c, c), Instant::now());
        assert_eq!(f.block_parity(32), 13);
        assert_eq!(f.block_parity(128), 31);
        let mut f = target();
        let c = iid_counts(200);
        f.on_loss_model(&report(c, c), Instant::now());
        assert_eq!(f.block_parity(1), 5);
    }

    /// Block failure of `(k, m)` under the Gilbert chain, by seeded Monte Carlo.
    fn monte_carlo(p: f64, r: f64, k: usize, m: usize, trials: u32) -> f64 {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut unit = || {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        };
        let pb = p / (p + r);
        let mut fails = 0u32;
        for _ in 0..trials {
            let mut bad = unit() < pb;
            let mut lost = 0;
            for _ in 0..k + m {
                lost += usize::from(bad);
                bad = if bad { unit() >= r } else { unit() < p };
            }
            fails += u32::from(lost > m);
        }
        f64::from(fails) / f64::from(trials)
    }

    #[test]
    fn burst_choice_holds_the_target_by_monte_carlo() {
        // The path: enter 1 %, leave 30 %. Counts with exactly that fit.
        let c = counts(31_000, 1_000, 300);
        let mut f = target();
        f.on_loss_model(&report(c, c), Instant::now());
        let k = 32;
        let m = f.block_parity(k);
        let cfg = *f.target_config();
        assert!(m > cfg.floor(k) && m < cfg.ceiling(k), "m {m}");
        // The choice is the least m within the target by the exact tail…
        let exact = FailureTable::new(&GilbertElliott::from_counts(&c).unwrap(), 256);
        assert!(exact.block_failure(k, m) <= cfg.target);
        assert!(exact.block_failure(k, m - 1) > cfg.target);
        // …and a simulation of the chain agrees with that tail at m and m − 1 (4 standard
        // errors).
        let trials = 2_000_000;
        for mm in [m - 1, m] {
            let mc = monte_carlo(0.01, 0.3, k, mm, trials);
            let want = exact.block_failure(k, mm);
            let se = (want / f64::from(trials)).sqrt();
            assert!(
                (mc - want).abs() <= 4.0 * se,
                "k {k} m {mm}: {mc} vs {want}"
            );
        }
        // Long geometric bursts dominate: a 32-shard block needs 27 parity shards for 1e-4.
        assert_eq!(m, 27);
        // Bursts need far more parity than iid loss of the same rate.
        let mut g = target();
        let iid = iid_counts(32);
        g.on_loss_model(&report(iid, iid), Instant::now());
        assert!(g.block_parity(k) < m);
    }

    #[test]
    fn rises_within_one_report_and_falls_slowly_to_the_floor() {
        let mut f = target();
        let cfg = *f.target_config();
        let mut now = Instant::now();
        let clean = counts(2_000, 0, 0);
        // Clean: settles from 20 % to the floor within 5 s.
        let ks = [32usize, 78, 128];
        let mut settled_at = None;
        for i in 0..50 {
            now += TICK;
            f.on_loss_model(&report(clean, counts(200, 0, 0)), now);
            if settled_at.is_none() && ks.iter().all(|&k| f.block_parity(k) == cfg.floor(k)) {
                settled_at = Some(i + 1);
            }
        }
        let settled = settled_at.expect("settles at the floor");
        assert!(settled * 100 <= 5_000, "took {settled} reports");
        // At the floor, a 720p (32 shards) and a 1080p (78 shards) frame carry ≤ 10 % parity.
        assert!(f.block_parity(32) * 10 <= 32);
        assert!(f.block_parity(78) * 10 <= 78);
        // 10 % loss appears in the latest interval only: one report raises to what it asks.
        now += TICK;
        let recent = counts(200, 20, 18);
        let mut window = clean;
        window.packets += 200;
        window.lost += 20;
        window.bursts += 18;
        f.on_loss_model(&report(window, recent), now);
        let raised: Vec<usize> = ks.iter().map(|&k| f.block_parity(k)).collect();
        let tables = [FailureTable::new(
            &GilbertElliott::from_counts(&recent).unwrap(),
            256,
        )];
        let want = cfg.demand(&tables);
        for (&k, &m) in ks.iter().zip(&raised) {
            assert!(m >= want.parity(k), "k {k}");
            assert!(m > cfg.floor(k));
        }
        // Clean again: nothing falls during the hold, then at most a quarter of the gap (at
        // least one shard) per decay interval.
        let raised_at = now;
        let mut prev = raised.clone();
        let mut last_fall = None::<Instant>;
        for _ in 0..100 {
            now += TICK;
            f.on_loss_model(&report(clean, counts(200, 0, 0)), now);
            let cur: Vec<usize> = ks.iter().map(|&k| f.block_parity(k)).collect();
            if cur != prev {
                assert!(now.duration_since(raised_at) >= cfg.hold);
                if let Some(t) = last_fall {
                    assert!(now.duration_since(t) >= cfg.decay_interval);
                }
                last_fall = Some(now);
                for (i, &k) in ks.iter().enumerate() {
                    assert!(cur[i] <= prev[i]);
                    let gap = prev[i] - cfg.floor(k);
                    assert!(prev[i] - cur[i] <= (gap / 4).max(1), "k {k}");
                }
            }
            prev = cur;
        }
        assert!(ks.iter().all(|&k| f.block_parity(k) == cfg.floor(k)));
    }

    #[test]
    fn repair_margin_keeps_an_answer_within_the_repair_target() {
        let mut f = target();
        assert_eq!(f.repair_margin(), RepairMargin::NONE);
        // Bursts entering at 2 % and leaving at 20 % (mean 5 datagrams): counts with exactly
        // that fit.
        let c = counts(11_000, 1_000, 200);
        f.on_loss_model(&report(c, c), Instant::now());
        let exact = FailureTable::new(&GilbertElliott::from_counts(&c).unwrap(), 256);
        let margin = f.repair_margin();
        for n in [1usize, 2, 3, 8, 20, 64] {
            let e = margin.extra(n);
            assert!(e <= MAX_REPAIR_MARGIN);
            if e < MAX_REPAIR_MARGIN {
                assert!(exact.block_failure(n, e) <= REPAIR_TARGET, "n {n} e {e}");
            }
            if e > 0 {
                assert!(exact.block_failure(n, e - 1) > REPAIR_TARGET, "n {n} e {e}");
            }
        }
        // One row asked needs rows beyond a mean burst; iid loss of the same rate far fewer.
        assert!(margin.extra(1) > 5, "{}", margin.extra(1));
        let mut g = target();
        let iid = iid_counts(91);
        g.on_loss_model(&report(iid, iid), Instant::now());
        assert!(g.repair_margin().extra(1) < margin.extra(1) / 2);
        // Outside target mode, none.
        let mut a = AdaptiveFec::new(FecMode::Adaptive, 20, 100);
        a.on_loss_model(&report(c, c), Instant::now());
        assert_eq!(a.repair_margin(), RepairMargin::NONE);
    }

    #[test]
    fn loss_with_a_growing_queue_raises_no_parity_and_parity_stays_within_the_data() {
        let mut f = target();
        let cfg = *f.target_config();
        let t0 = Instant::now();
        // Bursty loss (enter 1 %, leave 30 %) raised small blocks above their data (ceiling
        // 8 shards) and a 32-shard block to 27.
        let c = counts(31_000, 1_000, 300);
        f.on_loss_model(&report(c, c), t0);
        assert!(f.block_parity(2) > 2 && f.block_parity(32) > cfg.floor(32));
        let before = f.block_parity(32);
        // Congested: every block is capped at its data (not below the floor), and the same
        // loss (and worse) raises nothing for a second after the last congested verdict.
        f.on_congestion(true, t0 + TICK);
        for k in 1..MAX_SHARDS_PER_BLOCK {
            assert!(f.block_parity(k) <= k.max(cfg.floor(k)), "k {k}");
        }
        let heavy = counts(2_000, 1_000, 100);
        for i in 2..10 {
            f.on_loss_model(&report(heavy, heavy), t0 + TICK * i);
            assert!(f.block_parity(32) <= before, "raised while congested");
            assert!(f.block_parity(2) <= 2);
        }
        // A verdict that is not congested neither caps nor extends the memory.
        f.on_congestion(false, t0 + TICK * 10);
        // Past the memory, loss raises parity again.
        let later = t0 + TICK + CONGESTION_MEMORY + TICK;
        f.on_loss_model(&report(heavy, heavy), later);
        assert!(f.block_parity(32) > before);
        assert!(f.block_parity(2) > 2);
    }

    #[test]
    fn other_modes_ignore_models_and_target_ignores_plain_reports() {
        let c = iid_counts(100);
        for mode in [FecMode::Fixed, FecMode::Adaptive] {
            let mut f = AdaptiveFec::new(mode, 20, 100);
            f.on_loss_model(&report(c, c), Instant::now());
            assert_eq!(f.parity_table(), &ParityTable::from_percent(20));
        }
        let mut f = target();
        f.on_loss_report(900, 100, Instant::now());
        assert_eq!(f.parity_table(), &ParityTable::from_percent(20));
        // Adaptive keeps its table in step with its share.
        let mut f = AdaptiveFec::new(FecMode::Adaptive, 20, 100);
        f.on_loss_report(900, 100, Instant::now());
        assert_eq!(
            f.parity_table(),
            &ParityTable::from_percent(f.wire_percent())
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any report stream keeps every block size within its floor and ceiling (after the
        /// first report) and within GF(2^8).
        #[test]
        fn prop_parity_stays_within_floor_and_ceiling(
            reports in proptest::collection::vec(
                (1u32..5_000, 0u32..1000, 0u32..1000, 0u64..400), 1..30),
        ) {
            let mut f = target();
            let cfg = *f.target_config();
            let mut now = Instant::now();
            for (packets, lost_pm, burst_pm, gap) in reports {
                now += Duration::from_millis(gap);
                let lost = packets / 1000 * lost_pm;
                let bursts = (lost / 1000 * burst_pm).min(packets - lost + 1);
                let c = counts(packets, lost, bursts);
                f.on_loss_model(&report(c, c), now);
                for k in 1..MAX_SHARDS_PER_BLOCK {
                    let m = f.block_parity(k);
                    prop_assert!(m >= cfg.floor(k) && m <= cfg.ceiling(k), "k {} m {}", k, m);
                    prop_assert!(k + m <= MAX_SHARDS_PER_BLOCK);
                }
            }
        }
    }
}
