//! The loss model: what the client measures about datagram loss, the report it sends, and the
//! tail probabilities the host plans parity with.
//!
//! - [`LossEstimator`] (client) turns the sequence of authenticated packet numbers from the host
//!   into a finalized received/lost sequence (tolerating reordering by count and by time) and
//!   counts, per report interval, datagrams, losses and loss runs ("bursts"), plus a run-length
//!   histogram. A sliding window of the last [`WINDOW_REPORTS`] intervals makes the
//!   [`LossModelReport`], the model part of the client's loss report
//!   ([`LossReport`](super::report::LossReport), `docs/PROTOCOL.md` §5.2).
//! - [`GilbertElliott`] is the two-state burst model fitted from those counts (simple Gilbert
//!   fit: the good state never loses, the bad state always does; `p` = good→bad, `r` =
//!   bad→good per datagram), and [`FailureTable`] computes, exactly by dynamic programming over
//!   (state, losses), the probability that a block of `k` data and `m` parity shards loses more
//!   than `m` — for every `(k, m)` of GF(2^8) in one pass. [`binomial_tail`] is the iid case.
//!
//! This module never reads a clock (instants are arguments), never trusts the report it decodes
//! (every count is checked against the others) and never allocates per packet.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::protocol::fec::coder::MAX_SHARDS_PER_BLOCK;
use crate::protocol::wire::{Reader, WireError, Writer};

/// Report intervals in the sliding window. With the client's report every ~100 ms this is
/// about one second: long enough to see a few bursts at a few percent loss on a 20 Mbit/s
/// stream, short enough to forget a change within a second.
pub(crate) const WINDOW_REPORTS: usize = 10;

/// Buckets of the loss-run histogram: runs of 1, 2, 3, 4, 5–8, 9–16, 17–32 and ≥ 33 datagrams.
pub(crate) const BURST_BUCKETS: usize = 8;

/// Upper bounds (inclusive) of the histogram buckets; the last bucket is open.
const BURST_BUCKET_MAX: [u32; BURST_BUCKETS - 1] = [1, 2, 3, 4, 8, 16, 32];

/// Bucket index of a loss run of `len ≥ 1` datagrams.
pub(crate) fn burst_bucket(len: u32) -> usize {
    BURST_BUCKET_MAX
        .iter()
        .position(|&max| len <= max)
        .unwrap_or(BURST_BUCKETS - 1)
}

/// Counts over one span of finalized packet numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LossCounts {
    /// Packet numbers finalized (received or lost).
    pub packets: u32,
    /// Of those, lost.
    pub lost: u32,
    /// Loss runs that started in the span (a run is a maximal sequence of lost numbers).
    pub bursts: u32,
}

impl LossCounts {
    fn add(&mut self, o: &LossCounts) {
        self.packets = self.packets.saturating_add(o.packets);
        self.lost = self.lost.saturating_add(o.lost);
        self.bursts = self.bursts.saturating_add(o.bursts);
    }

    fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.packets).u32(self.lost).u32(self.bursts);
    }

    /// Decodes and checks consistency: `lost ≤ packets`, `bursts ≤ lost`, and at most one run
    /// more than there are received packets to separate runs.
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let c = LossCounts {
            packets: r.u32()?,
            lost: r.u32()?,
            bursts: r.u32()?,
        };
        if c.lost > c.packets || c.bursts > c.lost || c.bursts > c.packets - c.lost + 1 {
            return Err(WireError::Limit("loss counts"));
        }
        Ok(c)
    }

    /// Loss fraction, if any packets were counted.
    pub fn loss_rate(&self) -> Option<f64> {
        (self.packets > 0).then(|| f64::from(self.lost) / f64::from(self.packets))
    }
}

/// The loss model part of the client's [`LossReport`](super::report::LossReport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LossModelReport {
    /// Milliseconds the window covers (saturating).
    pub window_ms: u16,
    /// Counts since the previous report.
    pub recent: LossCounts,
    /// Counts over the window (the recent interval included).
    pub window: LossCounts,
    /// Loss runs in the window by length (see [`BURST_BUCKETS`]); sums to `window.bursts`.
    pub burst_hist: [u32; BURST_BUCKETS],
}

/// Encoded size of a [`LossModelReport`] (without the control type byte).
pub const LOSS_MODEL_LEN: usize = 2 + 12 + 12 + 4 * BURST_BUCKETS;

impl LossModelReport {
    /// Appends the report's body.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.u16(self.window_ms);
        self.recent.encode(w);
        self.window.encode(w);
        for b in self.burst_hist {
            w.u32(b);
        }
    }

    /// Decodes a report; every count is checked against the others (the recent interval is
    /// part of the window, the histogram sums to the window's runs).
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let window_ms = r.u16()?;
        let recent = LossCounts::decode(r)?;
        let window = LossCounts::decode(r)?;
        let mut burst_hist = [0u32; BURST_BUCKETS];
        for b in &mut burst_hist {
            *b = r.u32()?;
        }
        if recent.packets > window.packets
            || recent.lost > window.lost
            || recent.bursts > window.bursts
        {
            return Err(WireError::Limit("recent counts exceed the window"));
        }
        let sum = burst_hist
            .iter()
            .try_fold(0u32, |a, &b| a.checked_add(b))
            .ok_or(WireError::Limit("burst histogram"))?;
        if sum != window.bursts {
            return Err(WireError::Limit("burst histogram"));
        }
        Ok(LossModelReport {
            window_ms,
            recent,
            window,
            burst_hist,
        })
    }
}

/// Settings of a [`LossEstimator`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct EstimatorConfig {
    /// A missing packet number is declared lost once this many higher numbers arrived…
    pub reorder_packets: u64,
    /// …or once this long has passed since the first higher number arrived.
    pub reorder_time: Duration,
}

impl Default for EstimatorConfig {
    fn default() -> Self {
        EstimatorConfig {
            // Wi-Fi aggregation reorders within a few dozen datagrams and a few ms, but the
            // host's own control datagrams (pongs, stream info) take packet numbers after a
            // frame whose tail is still being paced out, and a loaded receiver drains its
            // socket in batches: measured on loopback at 50 Mbit/s, runs of 18–67 numbers
            // arrived more than 64 numbers late, which the first rule (64 / 15 ms) counted as
            // bursts of loss and drove FEC by target to 100 % on a lossless path. A late
            // datagram is not a lost one; 40 ms still finalizes well within one report
            // interval (100 ms). The count rule only bounds memory at very high rates.
            reorder_packets: 2048,
            reorder_time: Duration::from_millis(40),
        }
    }
}

/// Cumulative counters of a [`LossEstimator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct EstimatorStats {
    /// Packet numbers finalized as received.
    pub received: u64,
    /// Packet numbers finalized as lost.
    pub lost: u64,
    /// Packets that arrived after being declared lost (counted lost anyway).
    pub late: u64,
    /// Packets seen twice.
    pub duplicates: u64,
    /// Jumps beyond [`MAX_GAP`]: the sequence restarted without counting the gap.
    pub discontinuities: u64,
}

/// Pending packet numbers kept at most; beyond this the oldest are finalized at once.
const MAX_PENDING: usize = 4096;

/// A jump ahead larger than this is not counted as loss (it is a restart of the sequence, e.g.
/// after a long outage that the session handles on its own).
pub(crate) const MAX_GAP: u64 = 1 << 16;

/// Arrival checkpoints kept for the time rule.
const MAX_CHECKPOINTS: usize = 64;

#[derive(Debug, Clone, Copy, Default)]
struct Interval {
    counts: LossCounts,
    hist: [u32; BURST_BUCKETS],
    start: Option<Instant>,
}

/// Client-side loss estimator (see the module docs). Feed it every authenticated packet
/// number from the host with [`LossEstimator::on_packet`]; call
/// [`LossEstimator::report`] every report interval.
#[derive(Debug, Clone)]
pub(crate) struct LossEstimator {
    cfg: EstimatorConfig,
    /// Every number below this is finalized.
    next_final: Option<u64>,
    /// Received flags of `next_final ..= highest`.
    pending: VecDeque<bool>,
    /// (highest number at that time, arrival) whenever the highest number advanced.
    checkpoints: VecDeque<(u64, Instant)>,
    in_burst: bool,
    run_len: u32,
    current: Interval,
    closed: VecDeque<Interval>,
    stats: EstimatorStats,
}

impl Default for LossEstimator {
    fn default() -> Self {
        Self::new(EstimatorConfig::default())
    }
}

impl LossEstimator {
    pub(crate) fn new(cfg: EstimatorConfig) -> Self {
        LossEstimator {
            cfg,
            next_final: None,
            pending: VecDeque::new(),
            checkpoints: VecDeque::new(),
            in_burst: false,
            run_len: 0,
            current: Interval::default(),
            closed: VecDeque::new(),
            stats: EstimatorStats::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> EstimatorStats {
        self.stats
    }

    /// Forgets everything (a new session starts; packet numbers restart).
    pub(crate) fn reset(&mut self) {
        *self = Self::new(self.cfg);
    }

    /// One authenticated packet number from the host arrived at `now`.
    pub(crate) fn on_packet(&mut self, pn: u64, now: Instant) {
        if self.current.start.is_none() {
            self.current.start = Some(now);
        }
        let Some(base) = self.next_final else {
            self.next_final = Some(pn);
            self.pending.push_back(true);
            self.checkpoints.push_back((pn, now));
            return;
        };
        if pn < base {
            self.stats.late += 1;
            return;
        }
        let off = pn - base;
        let len = self.pending.len() as u64;
        if off < len {
            let slot = &mut self.pending[off as usize];
            if *slot {
                self.stats.duplicates += 1;
            }
            *slot = true;
        } else {
            let gap = off - len;
            if gap > MAX_GAP {
                // A restart: finalize what is pending by the usual rules, then start over.
                self.finalize_all();
                self.stats.discontinuities += 1;
                self.next_final = Some(pn);
                self.pending.clear();
                self.pending.push_back(true);
                self.checkpoints.clear();
                self.checkpoints.push_back((pn, now));
                return;
            }
            for _ in 0..gap {
                self.pending.push_back(false);
                if self.pending.len() > MAX_PENDING {
                    self.finalize_one();
                }
            }
            self.pending.push_back(true);
            if self.pending.len() > MAX_PENDING {
                self.finalize_one();
            }
            // Checkpoints are thinned to one per 1/16 of the reorder time, so the window always
            // reaches back the whole reorder time whatever the packet rate (with one per packet,
            // 64 of them covered only 14 ms at 50 Mbit/s and the time rule never fired). A
            // number folded into the newest checkpoint may be finalized up to that 1/16 early.
            let step = self.cfg.reorder_time / 16;
            match self.checkpoints.back_mut() {
                Some(last) if now.saturating_duration_since(last.1) < step => last.0 = pn,
                _ => {
                    if self.checkpoints.len() == MAX_CHECKPOINTS {
                        self.checkpoints.pop_front();
                    }
                    self.checkpoints.push_back((pn, now));
                }
            }
        }
        self.finalize(now);
    }

    /// Finalizes what the reorder rules allow at `now`.
    fn finalize(&mut self, now: Instant) {
        let Some(base) = self.next_final else { return };
        if self.pending.is_empty() {
            self.checkpoints.clear();
            return;
        }
        let highest = base + self.pending.len() as u64 - 1;
        // Count rule: everything at least `reorder_packets` below the highest.
        let mut until = highest.checked_sub(self.cfg.reorder_packets);
        // Time rule: numbers below a checkpoint that is older than `reorder_time`.
        while let Some(&(pn, at)) = self.checkpoints.front() {
            if now.saturating_duration_since(at) >= self.cfg.reorder_time {
                until = until.max(Some(pn));
                self.checkpoints.pop_front();
            } else {
                break;
            }
        }
        // The checkpoint's own number arrived, so it is final too (`<=`).
        let Some(until) = until else { return };
        while self.next_final.is_some_and(|b| b <= until) && !self.pending.is_empty() {
            self.finalize_one();
        }
    }

    fn finalize_all(&mut self) {
        while !self.pending.is_empty() {
            self.finalize_one();
        }
    }

    fn finalize_one(&mut self) {
        let Some(received) = self.pending.pop_front() else {
            return;
        };
        if let Some(b) = self.next_final.as_mut() {
            *b += 1;
        }
        let c = &mut self.current.counts;
        c.packets = c.packets.saturating_add(1);
        if received {
            self.stats.received += 1;
            if self.in_burst {
                self.in_burst = false;
                self.current.hist[burst_bucket(self.run_len)] += 1;
            }
        } else {
            self.stats.lost += 1;
            c.lost = c.lost.saturating_add(1);
            if !self.in_burst {
                self.in_burst = true;
                self.run_len = 0;
                c.bursts = c.bursts.saturating_add(1);
            }
            self.run_len = self.run_len.saturating_add(1);
        }
    }

    /// Closes the current interval and returns the report to send. A loss run still open
    /// at the end of the window is counted in the histogram at its length so far.
    pub(crate) fn report(&mut self, now: Instant) -> LossModelReport {
        self.finalize(now);
        let mut cur = std::mem::take(&mut self.current);
        cur.start.get_or_insert(now);
        let recent = cur.counts;
        if self.closed.len() == WINDOW_REPORTS - 1 {
            self.closed.pop_front();
        }
        self.closed.push_back(cur);
        self.current.start = Some(now);
        let mut window = LossCounts::default();
        let mut burst_hist = [0u32; BURST_BUCKETS];
        for i in &self.closed {
            window.add(&i.counts);
            for (h, v) in burst_hist.iter_mut().zip(i.hist) {
                *h = h.saturating_add(v);
            }
        }
        if self.in_burst {
            let b = &mut burst_hist[burst_bucket(self.run_len)];
            *b = b.saturating_add(1);
        }
        // Runs that started before the window but ended in it are in the histogram, not in
        // `bursts`: keep the report consistent by counting what the histogram holds.
        let hist_sum = burst_hist.iter().fold(0u32, |a, &b| a.saturating_add(b));
        let received = window.packets - window.lost;
        window.bursts = hist_sum.min(window.lost).min(received.saturating_add(1));
        if hist_sum != window.bursts {
            // Only at the window's edge (a run whose losses fell out of the window) or on
            // saturation; drop the histogram rather than send counts that contradict it.
            burst_hist = [0; BURST_BUCKETS];
            window.bursts = 0;
        }
        let window_ms = self
            .closed
            .front()
            .and_then(|i| i.start)
            .map_or(0, |s| now.saturating_duration_since(s).as_millis())
            .min(u16::MAX as u128) as u16;
        LossModelReport {
            window_ms,
            recent: LossCounts {
                bursts: recent.bursts.min(window.bursts),
                ..recent
            },
            window,
            burst_hist,
        }
    }
}

/// A two-state Gilbert-Elliott loss model per datagram: in the good state a datagram is lost
/// with probability `loss_good`, in the bad state with `loss_bad`; between datagrams the chain
/// moves good→bad with probability `p` and bad→good with `r`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Probability of going from the good to the bad state per datagram.
    pub p: f64,
    /// Probability of going from the bad back to the good state per datagram.
    pub r: f64,
    /// Loss probability in the good state.
    pub loss_good: f64,
    /// Loss probability in the bad state.
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// Independent loss with probability `q` (a chain that forgets its state).
    pub fn iid(q: f64) -> Self {
        let q = q.clamp(0.0, 1.0);
        GilbertElliott {
            p: q,
            r: 1.0 - q,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// The simple Gilbert fit of counts: `p = runs / received`, `r = runs / lost` (maximum
    /// likelihood for a chain whose bad state always loses). `None` without packets. No loss
    /// at all gives the lossless model (the controller's floor is the cushion for a change).
    pub(crate) fn from_counts(c: &LossCounts) -> Option<Self> {
        if c.packets == 0 {
            return None;
        }
        let received = f64::from(c.packets - c.lost.min(c.packets));
        let lost = f64::from(c.lost);
        if c.lost == 0 {
            return Some(Self::iid(0.0));
        }
        let runs = f64::from(c.bursts.max(1));
        let p = if received > 0.0 {
            (runs / received).min(1.0)
        } else {
            1.0
        };
        let r = (runs / lost).min(1.0);
        Some(GilbertElliott {
            p,
            r,
            loss_good: 0.0,
            loss_bad: 1.0,
        })
    }

    /// Probability of the bad state in the steady state.
    pub(crate) fn bad_share(&self) -> f64 {
        if self.p + self.r <= 0.0 {
            0.0
        } else {
            self.p / (self.p + self.r)
        }
    }

    /// Long-run loss rate.
    pub fn loss_rate(&self) -> f64 {
        let b = self.bad_share();
        (1.0 - b) * self.loss_good + b * self.loss_bad
    }

    /// Mean length of a stay in the bad state, in datagrams.
    pub fn mean_burst(&self) -> f64 {
        if self.r <= 0.0 {
            f64::INFINITY
        } else {
            1.0 / self.r
        }
    }
}

/// `P(X > m)` for `X ~ Binomial(n, q)`, summed from the top term down (small terms first, so a
/// tail of 1e-12 keeps its precision).
pub fn binomial_tail(n: usize, q: f64, m: usize) -> f64 {
    if m >= n {
        return 0.0;
    }
    if q <= 0.0 {
        return 0.0;
    }
    if q >= 1.0 {
        return 1.0;
    }
    // log C(n, j) by a running sum, so no factorial overflows.
    let (lq, lnq) = (q.ln(), (1.0 - q).ln());
    let mut log_c = vec![0.0f64; n + 1];
    for j in 1..=n {
        log_c[j] = log_c[j - 1] + ((n - j + 1) as f64).ln() - (j as f64).ln();
    }
    (m + 1..=n)
        .rev()
        .map(|j| (log_c[j] + j as f64 * lq + (n - j) as f64 * lnq).exp())
        .sum()
}

/// For one loss model, `P(more than m of the first n datagrams are lost)` for every
/// `n ≤ 256` and `m < n`, computed exactly by dynamic programming over (state, losses) from the
/// chain's steady state. A block of `k` data and `m` parity shards cannot be rebuilt exactly
/// when more than `m` of its `k + m` shards are lost, so its failure probability is
/// `tail(k + m, m)`.
///
/// The block's shards are taken as consecutive datagrams. On the wire a frame sends all data
/// shards first and the parity after, so a block's parity follows its data with the other
/// blocks' shards in between; treating them as adjacent is the pessimistic case for bursts.
pub struct FailureTable {
    /// Row `n` holds `tail(n, m)` for `m = 0 … n − 1` (row-major triangle).
    tails: Vec<f64>,
}

fn tri(n: usize) -> usize {
    n * (n - 1) / 2
}

impl FailureTable {
    /// Runs the DP for `model` up to `max_n ≤ 256` datagrams.
    pub fn new(model: &GilbertElliott, max_n: usize) -> Self {
        let max_n = max_n.min(MAX_SHARDS_PER_BLOCK);
        let p = model.p.clamp(0.0, 1.0);
        let r = model.r.clamp(0.0, 1.0);
        let (eg, eb) = (
            model.loss_good.clamp(0.0, 1.0),
            model.loss_bad.clamp(0.0, 1.0),
        );
        let pb = model.bad_share();
        // g[l], b[l]: P(next datagram's state is good / bad, l losses so far).
        let mut g = vec![0.0f64; max_n + 2];
        let mut b = vec![0.0f64; max_n + 2];
        g[0] = 1.0 - pb;
        b[0] = pb;
        let mut tails = vec![0.0f64; tri(max_n + 1)];
        let mut ng = vec![0.0f64; max_n + 2];
        let mut nb = vec![0.0f64; max_n + 2];
        for n in 1..=max_n {
            ng.iter_mut().for_each(|v| *v = 0.0);
            nb.iter_mut().for_each(|v| *v = 0.0);
            for l in 0..n {
                let (gl, bl) = (g[l], b[l]);
                if gl == 0.0 && bl == 0.0 {
                    continue;
                }
                // This datagram: lost or not, by its state; then the state moves on.
                let g_kept = gl * (1.0 - eg);
                let g_lost = gl * eg;
                let b_kept = bl * (1.0 - eb);
                let b_lost = bl * eb;
                ng[l] += g_kept * (1.0 - p) + b_kept * r;
                nb[l] += g_kept * p + b_kept * (1.0 - r);
                ng[l + 1] += g_lost * (1.0 - p) + b_lost * r;
                nb[l + 1] += g_lost * p + b_lost * (1.0 - r);
            }
            std::mem::swap(&mut g, &mut ng);
            std::mem::swap(&mut b, &mut nb);
            // Suffix sums from the top: tail(n, m) = Σ_{l > m} P(l losses in n).
            let row = &mut tails[tri(n)..tri(n) + n];
            let mut acc = 0.0;
            for m in (0..n).rev() {
                acc += g[m + 1] + b[m + 1];
                row[m] = acc.min(1.0);
            }
        }
        FailureTable { tails }
    }

    /// `P(more than m of n consecutive datagrams lost)`; 0 for `m ≥ n`.
    pub fn tail(&self, n: usize, m: usize) -> f64 {
        if m >= n || n == 0 || tri(n + 1) > self.tails.len() {
            return 0.0;
        }
        self.tails[tri(n) + m]
    }

    /// Failure probability of a block of `k` data and `m` parity shards.
    pub(crate) fn block_failure(&self, k: usize, m: usize) -> f64 {
        self.tail(k + m, m)
    }

    /// `P(more than m of n consecutive datagrams lost)` for any integer `m`: 1 below 0.
    fn tail_or_one(&self, n: usize, m: isize) -> f64 {
        if m < 0 { 1.0 } else { self.tail(n, m as usize) }
    }

    /// Failure probability of a block of `k` data and `m` parity shards of which `trailing`
    /// travel apart from the rest (behind the next frame's datagrams): more than `m` lost
    /// among the `k + m − trailing` consecutive datagrams sent with the frame and the
    /// `trailing` consecutive ones sent later, the two runs taken as independent (a frame's
    /// worth of datagrams lies between them, over which the chain returns to its steady
    /// state). Equals [`FailureTable::block_failure`] for `trailing = 0`.
    pub(crate) fn split_block_failure(&self, k: usize, m: usize, trailing: usize) -> f64 {
        if trailing == 0 || trailing > m {
            return self.block_failure(k, m);
        }
        let n1 = k + m - trailing;
        let mut fail = 0.0;
        for x in 0..=n1 {
            // P(exactly x lost of the first run) × P(more than m − x of the trailing lost).
            let exact = self.tail_or_one(n1, x as isize - 1) - self.tail_or_one(n1, x as isize);
            if exact > 0.0 {
                fail += exact * self.tail_or_one(trailing, m as isize - x as isize);
            }
        }
        fail.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests;
